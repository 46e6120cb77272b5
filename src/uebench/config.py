"""Typed, strict configuration: frozen dataclasses from YAML plus ``key.sub=value`` overrides.

Merge order: dataclass defaults < YAML file < command-line overrides. Unknown keys and values of
the wrong type raise :class:`ConfigError` before any compute starts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from uebench.errors import ConfigError

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class TrainCfg:
    """Optimisation and data-pipeline settings of one training run."""

    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"  # sgd | adam
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    schedule: str = "multistep"  # multistep | cosine | constant
    # multistep milestones: values < 1 are fractions of `epochs`, values >= 1 absolute epochs
    milestones: tuple[float, ...] = (0.5, 0.75)
    gamma: float = 0.1
    augment: str = "crop_flip"  # none | flip | crop | crop_flip
    crop_padding: int = 4
    drop_last: bool = False
    # keep the model state of every epoch in RUN/snapshots (post-hoc SAL: uebench sal RUN)
    snapshots: bool = False
    precision: str = "auto"  # auto | fp32 | bf16
    channels_last: str = "auto"  # auto | on | off
    grad_clip: float = 0.0
    label_smoothing: float = 0.0
    eval_batch_size: int = 1024

    def __post_init__(self) -> None:
        _choice("train.optimizer", self.optimizer, ("sgd", "adam"))
        _choice("train.schedule", self.schedule, ("multistep", "cosine", "constant"))
        _choice("train.augment", self.augment, ("none", "flip", "crop", "crop_flip"))
        _choice("train.precision", self.precision, ("auto", "fp32", "bf16"))
        _choice("train.channels_last", self.channels_last, ("auto", "on", "off"))
        _positive("train.epochs", self.epochs, allow_zero=True)
        _positive("train.batch_size", self.batch_size)
        _positive("train.eval_batch_size", self.eval_batch_size)
        if self.lr <= 0:
            raise ConfigError(f"train.lr must be > 0, got {self.lr}")


@dataclasses.dataclass(frozen=True)
class DataCfg:
    name: str = "fashion-mnist"
    data_dir: str | None = None
    train_size: int | None = None
    test_size: int | None = None
    # seed of the stratified subsets; None = the run's seed. Fix it to vary a run's seed (init,
    # data order) while keeping the same images (and so a poison made for them).
    subset_seed: int | None = None


@dataclasses.dataclass(frozen=True)
class ModelCfg:
    name: str = "lenet5"
    width: float = 1.0
    normalize: bool = True  # per-channel train-set mean/std inside the model; False = identity


@dataclasses.dataclass(frozen=True)
class SalCfg:
    """Per-epoch SAL measurement (the paper's Eq. 3) attached to a training run."""

    enabled: bool = False
    engine: str = "fast"  # fast | compat (uebench.learnability engines)
    eps: float = 0.05  # relative L2 radius: ||v|| <= eps * ||theta_l||
    origin: str | None = None  # official | exact; None = the engine's default
    options: dict[str, Any] = dataclasses.field(default_factory=dict)  # engine-specific

    def __post_init__(self) -> None:
        if self.eps <= 0:
            raise ConfigError(f"sal.eps must be > 0, got {self.eps}")
        if self.origin is not None:
            _choice("sal.origin", self.origin, ("official", "exact"))


@dataclasses.dataclass(frozen=True)
class RunCfg:
    """Everything that defines one training run (and its run id)."""

    data: DataCfg = dataclasses.field(default_factory=DataCfg)
    model: ModelCfg = dataclasses.field(default_factory=ModelCfg)
    train: TrainCfg = dataclasses.field(default_factory=TrainCfg)
    sal: SalCfg = dataclasses.field(default_factory=SalCfg)
    seed: int = 0
    init_seed: int | None = None  # None = seed; equal init_seed => identical initial weights
    poison: str | None = None  # a poison directory (uebench poison --out DIR)
    device: str = "auto"


def _choice(key: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key} must be one of {', '.join(allowed)}; got {value!r}")


def _positive(key: str, value: int, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{key} must be {'>= 0' if allow_zero else '> 0'}, got {value}")


# ----------------------------------------------------------------------------- conversion


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Check/convert ``value`` to the annotated type ``tp``; raise ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(key, value, arg)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key}: bad value {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} must be a mapping, got {type(value).__name__}")
        return from_dict(tp, value, prefix=f"{key}.")
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        (inner, *_rest) = typing.get_args(tp)
        return tuple(_coerce(key, v, inner) for v in value)
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
    if origin is dict:
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
    except ValueError:
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
    kwargs = {k: _coerce(prefix + k, v, hints[k]) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:  # pragma: no cover - defensive
        raise ConfigError(str(exc)) from None


def to_dict(cfg: Any) -> dict[str, Any]:
    """A plain (YAML/JSON-serialisable) dict of a config dataclass."""
    out = dataclasses.asdict(cfg)
    return json.loads(json.dumps(out))  # tuples -> lists


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b=value`` -> (["a", "b"], YAML-parsed value)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value (e.g. train.lr=0.05)")
    key, raw = text.split("=", 1)
    if not key.strip():
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def merge(base: dict[str, Any], path: Sequence[str], value: Any) -> None:
    node = base
    for part in path[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            node[part] = nxt
        node = nxt
    node[path[-1]] = value


def deep_update(base: dict[str, Any], upd: Mapping[str, Any]) -> dict[str, Any]:
    for k, v in upd.items():
        if isinstance(v, Mapping) and isinstance(base.get(k), dict):
            deep_update(base[k], v)
        else:
            base[k] = v
    return base


def load_yaml(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def load_config(
    cls: type[T],
    *,
    file: Path | str | None = None,
    overrides: Sequence[str] = (),
    base: Mapping[str, Any] | None = None,
) -> T:
    """defaults < ``base`` (e.g. CLI flags) < YAML ``file`` < ``key=value`` ``overrides``."""
    data: dict[str, Any] = {}
    if base:
        deep_update(data, json.loads(json.dumps(base)))
    if file is not None:
        deep_update(data, load_yaml(file))
    for item in overrides:
        path, value = parse_override(item)
        merge(data, path, value)
    return from_dict(cls, data)


def config_hash(cfg: Any) -> str:
    """Short stable hash of a config (run ids)."""
    blob = json.dumps(to_dict(cfg), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:10]
