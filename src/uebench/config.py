"""Typed, strict configuration: frozen dataclasses, resolved in ONE place.

A run's config is resolved by :func:`resolve_run_cfg`, with this precedence (later wins)::

    dataclass defaults < the dataset's recipe < YAML file (--config) < CLI flags < key=value

The dataset's recipe is registry metadata (``@register_dataset(..., recipe={...})``): the training
settings measured to work for that data. Unknown keys, values of the wrong type, choices outside
a ``Literal`` and impossible numbers (NaN, negative learning rates, ...) raise
:class:`ConfigError` before any compute starts. The same coercer (:func:`coerce`, from
:mod:`uebench.utils.typed`, which the defenses use too) checks attack parameters against the attack
function's type hints.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml

from uebench.data import DATASETS
from uebench.defenses import DefensePipeline
from uebench.errors import ConfigError
from uebench.utils.typed import added_field, coerce, from_dict, to_dict
from uebench.utils.typed import parse_number as parse_number  # public here too

Optimizer = Literal["sgd", "adam"]
Schedule = Literal["multistep", "cosine", "constant"]
Augment = Literal["none", "flip", "crop", "crop_flip"]
Precision = Literal["auto", "fp32", "bf16"]
Switch = Literal["auto", "on", "off"]
Origin = Literal["official", "exact"]
PoisonMix = Literal["replace", "add"]


@dataclasses.dataclass(frozen=True)
class TrainCfg:
    """Optimisation and data-pipeline settings of one training run."""

    epochs: int = 10
    batch_size: int = 128
    optimizer: Optimizer = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    schedule: Schedule = "multistep"
    # multistep milestones: values < 1 are fractions of `epochs`, values >= 1 absolute epochs
    milestones: tuple[float, ...] = (0.5, 0.75)
    gamma: float = 0.1
    augment: Augment = "crop_flip"
    crop_padding: int = 4
    drop_last: bool = False
    # keep the model state of every epoch in RUN/snapshots (post-hoc SAL: uebench sal RUN)
    snapshots: bool = False
    precision: Precision = "auto"
    channels_last: Switch = "auto"
    grad_clip: float = 0.0
    label_smoothing: float = 0.0
    eval_batch_size: int = 1024

    def __post_init__(self) -> None:
        check_choices(self, "train.")
        _number("train.epochs", self.epochs, low=1)
        _number("train.batch_size", self.batch_size, low=1)
        _number("train.eval_batch_size", self.eval_batch_size, low=1)
        _number("train.lr", self.lr, low=0, strict=True)
        _number("train.momentum", self.momentum, low=0, high=1)
        _number("train.weight_decay", self.weight_decay, low=0)
        _number("train.gamma", self.gamma, low=0, strict=True)
        _number("train.crop_padding", self.crop_padding, low=0)
        _number("train.grad_clip", self.grad_clip, low=0)
        _number("train.label_smoothing", self.label_smoothing, low=0, high=1)
        for m in self.milestones:
            _number("train.milestones", m, low=0)


@dataclasses.dataclass(frozen=True)
class DataCfg:
    name: str = "fashion-mnist"
    data_dir: str | None = None
    train_size: int | None = None
    test_size: int | None = None
    # seed of the stratified subsets; None = the run's seed. Fix it to vary a run's seed (init,
    # data order) while keeping the same images (and so a poison made for them).
    subset_seed: int | None = None

    def __post_init__(self) -> None:
        for key in ("train_size", "test_size"):
            value = getattr(self, key)
            if value is not None:
                _number(f"data.{key}", value, low=1)


@dataclasses.dataclass(frozen=True)
class ModelCfg:
    name: str = "lenet5"
    width: float = 1.0
    normalize: bool = True  # per-channel train-set mean/std inside the model; False = identity

    def __post_init__(self) -> None:
        _number("model.width", self.width, low=0, strict=True)


@dataclasses.dataclass(frozen=True)
class SalCfg:
    """Per-epoch SAL measurement (the paper's Eq. 3) attached to a training run."""

    enabled: bool = False
    engine: str = "fast"  # a registered SAL engine (uebench.learnability.SAL_ENGINES)
    eps: float = 0.05  # relative L2 radius: ||v|| <= eps * ||theta_l||
    origin: Origin | None = None  # None = the engine's default
    options: dict[str, Any] = dataclasses.field(default_factory=dict)  # engine-specific

    def __post_init__(self) -> None:
        check_choices(self, "sal.")
        _number("sal.eps", self.eps, low=0, strict=True)


@dataclasses.dataclass(frozen=True)
class TrajectoryCfg:
    """Record the parameter path every ``every`` optimiser steps (loss landscapes, paper Fig. 1/10)
    into ``RUN/trajectory/``; ``every`` None = about 150 snapshots per run."""

    enabled: bool = False
    every: int | None = None
    layers: tuple[str, ...] = ()  # module-path prefixes; empty = every parameter
    dtype: Literal["float32", "float16", "bfloat16", "float64"] = "float32"

    def __post_init__(self) -> None:
        check_choices(self, "trajectory.")
        if self.every is not None:
            _number("trajectory.every", self.every, low=1)


@dataclasses.dataclass(frozen=True)
class RunCfg:
    """Everything that defines one training run (and its run id)."""

    data: DataCfg = dataclasses.field(default_factory=DataCfg)
    model: ModelCfg = dataclasses.field(default_factory=ModelCfg)
    train: TrainCfg = dataclasses.field(default_factory=TrainCfg)
    sal: SalCfg = dataclasses.field(default_factory=SalCfg)
    trajectory: TrajectoryCfg = dataclasses.field(default_factory=TrajectoryCfg)
    seed: int = 0
    init_seed: int | None = None  # None = seed; equal init_seed => identical initial weights
    poison: str | None = None  # a poison directory (uebench poison generate --out DIR)
    # partial and mixed poisoning (docs/bench.md, "Partial and mixed poisoning"): the share of the
    # training images that take their poisoned version, and whether that version replaces the
    # clean image (N images) or is added beside the whole clean set (N + ratio * N). Added after
    # runs were stored: at these defaults (every image poisoned, in place) the keys are left out
    # of stored configs, so earlier run ids and bench store keys stay what they were.
    poison_ratio: float = added_field(1.0)
    poison_mix: PoisonMix = added_field("replace")
    # defenses, in the order they act: "none", "jpeg", "jpeg,cutout", "at:eps=4/255" (see
    # uebench.defenses.pipeline); stored canonically (DefensePipeline.spec)
    defense: str = "none"
    device: str = "auto"

    def __post_init__(self) -> None:
        _number("seed", self.seed, low=0)
        if self.init_seed is not None:
            _number("init_seed", self.init_seed, low=0)
        ratio = self.poison_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) \
                or not 0 <= ratio <= 1:  # NaN fails both comparisons
            raise ConfigError(
                f"poison_ratio must be a number in [0, 1] (the share of the training images that "
                f"take their poisoned version; 1, the default, is all of them), got {ratio!r}: "
                "pass e.g. --poison-ratio 0.5 or poison_ratio=0.5")
        coerce("poison_mix", self.poison_mix, PoisonMix)


# ----------------------------------------------------------------------------- checks


def _number(key: str, value: float, *, low: float | None = None, high: float | None = None,
            strict: bool = False) -> None:
    """Finite and inside [low, high] (``strict``: > low)."""
    if not math.isfinite(value):
        raise ConfigError(f"{key} must be a finite number, got {value}")
    if low is not None and (value <= low if strict else value < low):
        raise ConfigError(f"{key} must be {'>' if strict else '>='} {low:g}, got {value:g}")
    if high is not None and value > high:
        raise ConfigError(f"{key} must be <= {high:g}, got {value:g}")


def check_choices(cfg: Any, prefix: str = "") -> None:
    """Every ``Literal``-typed field holds one of its choices (also for direct construction)."""
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        coerce(prefix + f.name, getattr(cfg, f.name), hints[f.name])


# ----------------------------------------------------------------------------- conversion
# (coerce, from_dict and to_dict come from uebench.utils.typed)


def sparse(cfg: Any) -> dict[str, Any]:
    """The settings of ``cfg`` that differ from its dataclass defaults (nested)."""
    full, default = to_dict(cfg), to_dict(type(cfg)())

    def diff(a: Any, b: Any) -> Any:
        if isinstance(a, dict) and isinstance(b, dict):
            out = {k: diff(v, b.get(k)) for k, v in a.items() if v != b.get(k)}
            return {k: v for k, v in out.items() if v != {}}
        return a

    return diff(full, default)


def config_hash(cfg: Any) -> str:
    """Short stable hash of a config (run ids): of its non-default settings only, so a field
    added to the config later (with its default) does not change the id of earlier runs."""
    blob = json.dumps(sparse(cfg), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:10]


# ----------------------------------------------------------------------------- resolution


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


def parse_params(items: list[str]) -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` -> ``{"a.b": 1, "c": "x"}`` (attack parameters, engine options)."""
    params: dict[str, Any] = {}
    for item in items:
        path, value = parse_override(item)
        params[".".join(path)] = value
    return params


def _merge(base: dict[str, Any], path: Sequence[str], value: Any) -> None:
    node = base
    for part in path[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            node[part] = nxt
        node = nxt
    node[path[-1]] = value


def _deep_update(base: dict[str, Any], upd: Mapping[str, Any]) -> dict[str, Any]:
    for k, v in upd.items():
        if isinstance(v, Mapping) and isinstance(base.get(k), dict):
            _deep_update(base[k], v)
        else:
            base[k] = v
    return base


def load_yaml(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist (or is not a file)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


@dataclasses.dataclass(frozen=True)
class Flag:
    """A run setting with a short name: a keyword of :func:`resolve_run_cfg`, a grid axis
    (``dataset: [...]``) and, where ``help`` is given, the command-line option ``--<name>``
    (``uebench.commandline.add_flag``). Declared once here, so the three cannot disagree."""

    key: str  # dotted config key, e.g. "data.train_size"
    help: str | None = None  # None: a keyword and grid axis only, no command-line option
    type: Any = str  # how argparse converts the option's text

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(self.key.split("."))


# flags are a layer of their own: above the YAML file, below key=value
RUN_FLAGS: dict[str, Flag] = {
    "dataset": Flag("data.name", "dataset name (uebench datasets)"),
    "data_dir": Flag("data.data_dir", "where the dataset files are ($UEBENCH_DATA)"),
    "train_size": Flag("data.train_size", "stratified seeded training subset", int),
    "test_size": Flag("data.test_size", "stratified seeded test subset", int),
    "model": Flag("model.name", "model name (uebench models)"),
    "width": Flag("model.width"),
    "epochs": Flag("train.epochs", "training epochs (default: the dataset's recipe)", int),
    "seed": Flag("seed", "seed (subsets, data order, init; 0)", int),
    "device": Flag("device", "cpu, cuda, cuda:1 or auto (default)"),
    "poison": Flag("poison", "train on this poison directory"),
    "poison_ratio": Flag("poison_ratio", "share of the training images that take their poisoned "
                                         "version, 0..1 (default 1: all)", float),
    "poison_mix": Flag("poison_mix", "replace (default: protected images replace their clean "
                                     "ones) or add (protected copies beside the whole clean set)"),
    "init_seed": Flag("init_seed"),
    "sal_engine": Flag("sal.engine", "SAL engine (default: sal.engine, fast)"),
    "sal_origin": Flag("sal.origin", "official or exact (engine default)"),
    "defense": Flag("defense", "defenses in the order they act: jpeg, jpeg,cutout "
                               "(uebench defenses)"),
}


def flag_paths(flags: Mapping[str, Flag]) -> dict[str, tuple[str, ...]]:
    """Short name -> config key path of each declared flag."""
    return {name: flag.path for name, flag in flags.items()}


FLAG_KEYS = flag_paths(RUN_FLAGS)


def input_layers(
    config_file: str | Path | None, flags: Mapping[str, Any], overrides: Sequence[str],
    flag_keys: Mapping[str, tuple[str, ...]] | None = None,
) -> tuple[dict[str, Any], dict[str, Any], list[tuple[list[str], Any]]]:
    """The user's three layers, parsed: YAML file, flags (CLI names, ``None`` = not given) as
    nested config data via ``flag_keys`` (default :data:`FLAG_KEYS`), and ``key=value``
    overrides as (path, value) pairs."""
    keys = FLAG_KEYS if flag_keys is None else flag_keys
    file_data = load_yaml(config_file) if config_file else {}
    flag_data: dict[str, Any] = {}
    for key, value in flags.items():
        if key not in keys:
            raise TypeError(f"unknown flag {key}")
        if value is not None:
            _merge(flag_data, keys[key], value)
    return file_data, flag_data, [parse_override(o) for o in overrides]


def resolve_run_cfg(
    *,
    config_file: str | Path | None = None,
    overrides: Sequence[str] = (),
    **flags: Any,
) -> RunCfg:
    """The one way a :class:`RunCfg` is made from user input (see the module docstring).

    ``flags`` uses the short names of :data:`RUN_FLAGS`; ``None`` means "not given".
    """
    file_data, flag_data, parsed = input_layers(config_file, flags, overrides)
    # the recipe belongs to the dataset named by the highest layer that names one
    dataset = RunCfg().data.name
    for layer in (file_data, flag_data):
        dataset = (layer.get("data") or {}).get("name", dataset)
    for path, value in parsed:
        if path == ["data", "name"]:
            dataset = value
    recipe = DATASETS.meta(str(dataset)).get("recipe") or {}
    data: dict[str, Any] = {"train": json.loads(json.dumps(recipe))}
    _deep_update(data, file_data)
    _deep_update(data, flag_data)
    for path, value in parsed:
        _merge(data, path, value)
    return canonical(from_dict(RunCfg, data))


def without_poison(cfg: RunCfg) -> RunCfg:
    """``cfg`` of its clean run: no poison, and so no poisoned share or mix. A clean run is the same
    run whatever ratio its poisoned siblings use, so one clean run serves them all (a grid with a
    ``poison_ratio`` axis trains its clean runs once)."""
    return dataclasses.replace(cfg, poison=None, poison_ratio=1.0, poison_mix="replace")


def canonical(cfg: RunCfg) -> RunCfg:
    """``cfg`` with its defense spec validated and in canonical form (one spelling per run)."""
    return dataclasses.replace(cfg, defense=DefensePipeline.from_spec(cfg.defense).spec())
