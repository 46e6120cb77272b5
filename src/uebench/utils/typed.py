"""Typed conversion of plain data (YAML, JSON, ``key=value`` text) into annotated dataclasses.

:func:`from_dict` builds a frozen config dataclass from a mapping and :func:`coerce` checks one
value against a type hint, both raising :class:`~uebench.errors.ConfigError` that names the key.
They serve the run config (:mod:`uebench.config`), the defenses' hyperparameters and the attacks'
parameters; they live here, below all three, so that none has to import another for them.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from uebench.errors import ConfigError

T = TypeVar("T")


def coerce(key: str, value: Any, tp: Any) -> Any:
    """Check/convert ``value`` to the annotated type ``tp``; raise ConfigError naming ``key``.

    Supports bool, int, float (also ``"8/255"``/``"1e-3"`` strings), str, ``Literal`` choices,
    ``X | None``, ``tuple[X, ...]``, ``list[X]``, dicts, nested config dataclasses and ``Any``.
    """
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce(key, value, arg)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key}: bad value {value!r}")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(
                f"{key} must be one of {', '.join(map(str, choices))}; got {value!r}"
            )
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} must be a mapping, got {type(value).__name__}")
        return from_dict(tp, value, prefix=f"{key}.")
    if origin in (tuple, list):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        (inner, *_rest) = typing.get_args(tp) or (Any,)
        return origin(coerce(key, v, inner) for v in value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string; also allow "8/255"
            value = parse_number(key, value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return value
    if tp is Any:
        return value
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        return dict(value)
    raise ConfigError(f"{key}: unsupported config type {tp}")


def parse_number(key: str, text: str) -> float:
    """A number written as text: ``"0.05"``, ``"1e-3"`` or a fraction ``"8/255"``."""
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            return float(num) / float(den)
        return float(text)
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"{key} must be a number, got {text!r}") from None


def from_dict(cls: type[T], data: Mapping[str, Any], prefix: str = "") -> T:
    """Build a config dataclass from a mapping; unknown keys and wrong types raise ConfigError."""
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ConfigError(
            f"unknown config key(s): {', '.join(prefix + k for k in unknown)}. "
            f"Valid keys{' under ' + prefix.rstrip('.') if prefix else ''}: "
            f"{', '.join(sorted(fields))}"
        )
    kwargs = {k: coerce(prefix + k, v, hints[k]) for k, v in data.items()}
    return cls(**kwargs)


# Metadata of a field added to a config after configs of that class were stored (run directories'
# config.yaml, run ids, bench store keys, all made from to_dict): to_dict leaves such a field out
# while it holds its default, so every config written before the field existed still reads,
# compares and hashes exactly as it did, and only settings that use the new field get new ids.
OMIT_AT_DEFAULT = "omit_at_default"


def added_field(default: Any) -> Any:
    """A dataclass field with ``default`` that :func:`to_dict` omits while it holds that default
    (see :data:`OMIT_AT_DEFAULT`); :func:`from_dict` fills it back in."""
    return dataclasses.field(default=default, metadata={OMIT_AT_DEFAULT: True})


def to_dict(cfg: Any) -> dict[str, Any]:
    """A plain (YAML/JSON-serialisable) dict of a config dataclass, without the
    :func:`added_field` fields that hold their defaults."""
    out = dataclasses.asdict(cfg)
    _omit_defaults(cfg, out)
    return json.loads(json.dumps(out))  # tuples -> lists


def _omit_defaults(cfg: Any, out: dict[str, Any]) -> None:
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if f.metadata.get(OMIT_AT_DEFAULT) and value == f.default:
            del out[f.name]
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            _omit_defaults(value, out[f.name])
