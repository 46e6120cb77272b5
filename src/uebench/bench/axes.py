"""The values a grid varies: methods (clean training, a generated or an existing poison) and
the other axes' settings, parsed from the grid file's entries."""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from uebench.config import FLAG_KEYS, RunCfg
from uebench.errors import ConfigError

VANILLA_NAMES = ("vanilla", "clean")


@dataclasses.dataclass(frozen=True)
class Method:
    """One value of the method axis: clean training, a generated poison or an existing one."""

    name: str
    attack: str | None = None
    preset: str = "original"
    params: tuple[tuple[str, Any], ...] = ()
    path: str | None = None  # an existing poison directory (uebench check --protected)

    @property
    def vanilla(self) -> bool:
        return self.attack is None and self.path is None

VANILLA = Method("vanilla")


@dataclasses.dataclass(frozen=True)
class AxisValue:
    label: str
    overrides: tuple[tuple[str, Any], ...]  # (dotted RunCfg key, value)


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested/dotted settings as (dotted key, leaf value) pairs; lists are leaves."""
    out: list[tuple[str, Any]] = []
    for key, value in mapping.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out += flatten(value, path + ".")
        elif not (isinstance(value, Mapping) and not value):
            out.append((path, value))
    return out


def reject_device(keys: Sequence[str], where: str) -> None:
    if any(k == "device" for k in keys):
        raise ConfigError(f"{where}: 'device' is not a grid setting; the executor assigns devices "
                          "(uebench bench --devices cuda:0,cuda:1, or Ray's num_gpus)")


def parse_method(item: Any) -> Method:
    """``"ops"``, ``"em:classwise"`` (attack:preset) or ``{name, attack, preset, params}``."""
    if isinstance(item, str):
        attack, _, preset = item.partition(":")
        if attack in VANILLA_NAMES:
            return VANILLA
        return Method(name=item.replace(":", "-"), attack=attack, preset=preset or "original")
    if not isinstance(item, Mapping):
        raise ConfigError(f"grid.method: {item!r} is neither a name nor a mapping")
    unknown = sorted(set(item) - {"name", "attack", "preset", "params", "path"})
    if unknown:
        raise ConfigError(f"grid.method: unknown key(s) {unknown}; use name, attack, preset, "
                          "params (or path for an existing poison)")
    params = item.get("params") or {}
    if not isinstance(params, Mapping):
        raise ConfigError(f"grid.method {item!r}: params must be a mapping")
    attack, path = item.get("attack"), item.get("path")
    if (attack is None) == (path is None):
        raise ConfigError(f"grid.method {item!r}: give exactly one of attack or path")
    name = item.get("name") or (attack if attack else Path(str(path)).name)
    return Method(name=str(name), attack=attack, preset=str(item.get("preset", "original")),
                  params=tuple(sorted(params.items())), path=None if path is None else str(path))


def axis_path(axis: str) -> str:
    """The dotted RunCfg key of an axis name (``dataset`` -> ``data.name``)."""
    return ".".join(FLAG_KEYS[axis]) if axis in FLAG_KEYS else axis


def axis_name(key: str) -> str:
    """The short name of a dotted key, where there is one (``data.name`` -> ``dataset``)."""
    for short, path in FLAG_KEYS.items():
        if ".".join(path) == key:
            return short
    return key


def _is_section(path: str) -> bool:
    """Whether a dotted key names a section of :class:`RunCfg` (``train``, ``sal``), not a value."""
    node: Any = RunCfg
    for part in path.split("."):
        if not dataclasses.is_dataclass(node):
            return False
        hints = typing.get_type_hints(node)
        if part not in hints:
            return False
        node = hints[part]
    return dataclasses.is_dataclass(node)


def parse_axis_value(axis: str, value: Any) -> AxisValue:
    path = axis_path(axis)
    if not isinstance(value, Mapping):
        return AxisValue(label=str(value), overrides=((path, value),))
    fields = dict(value)
    label = fields.pop("label", None)
    if "." in path and axis in FLAG_KEYS:  # model: {name, width} sets model.name, model.width
        section = path.rsplit(".", 1)[0]
        overrides = tuple((f"{section}.{k}", v) for k, v in flatten(fields))
        default = fields.get(path.rsplit(".", 1)[1], json.dumps(fields, sort_keys=True))
    elif _is_section(path):  # train: {optimizer, lr} sets those keys, the rest stays as in base
        overrides = tuple((f"{path}.{k}", v) for k, v in flatten(fields))
        default = json.dumps(fields, sort_keys=True)
    else:  # a mapping-valued key (e.g. sal.options)
        overrides = ((path, fields),)
        default = json.dumps(fields, sort_keys=True)
    reject_device([k for k, _ in overrides], f"grid.{axis}")
    return AxisValue(label=str(label if label is not None else default), overrides=overrides)
