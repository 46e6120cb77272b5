"""The sections of a run's config: frozen dataclasses whose fields are checked on construction
(choices of a ``Literal``, impossible numbers), and what is computed from a whole config (its
sparse form, its hash, its clean sibling)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import typing
from typing import Any, Literal

from uebench.defenses import DefensePipeline
from uebench.errors import ConfigError
from uebench.utils.typed import added_field, coerce, to_dict

Optimizer = Literal["sgd", "adam"]
Schedule = Literal["multistep", "cosine", "constant"]
Augment = Literal["none", "flip", "crop", "crop_flip"]
Precision = Literal["auto", "fp32", "bf16"]
Switch = Literal["auto", "on", "off"]
Origin = Literal["official", "exact"]
PoisonMix = Literal["replace", "add", "drop"]


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
        check_number("train.epochs", self.epochs, low=1)
        check_number("train.batch_size", self.batch_size, low=1)
        check_number("train.eval_batch_size", self.eval_batch_size, low=1)
        check_number("train.lr", self.lr, low=0, strict=True)
        check_number("train.momentum", self.momentum, low=0, high=1)
        check_number("train.weight_decay", self.weight_decay, low=0)
        check_number("train.gamma", self.gamma, low=0, strict=True)
        check_number("train.crop_padding", self.crop_padding, low=0)
        check_number("train.grad_clip", self.grad_clip, low=0)
        check_number("train.label_smoothing", self.label_smoothing, low=0, high=1)
        for m in self.milestones:
            check_number("train.milestones", m, low=0)


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
                check_number(f"data.{key}", value, low=1)


@dataclasses.dataclass(frozen=True)
class ModelCfg:
    name: str = "lenet5"
    width: float = 1.0
    normalize: bool = True  # per-channel train-set mean/std inside the model; False = identity

    def __post_init__(self) -> None:
        check_number("model.width", self.width, low=0, strict=True)


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
        check_number("sal.eps", self.eps, low=0, strict=True)


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
            check_number("trajectory.every", self.every, low=1)


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
    # clean image (N images), is added beside the whole clean set (N + ratio * N), or is left
    # out with its clean original (drop: N - ratio * N, the clean part alone: what a trainer who
    # found and removed the protected images trains on, the baseline a partial protection is
    # read against). Added after runs were stored: at these defaults (every image poisoned, in
    # place) the keys are left out of stored configs, so earlier run ids and bench store keys
    # stay what they were.
    poison_ratio: float = added_field(1.0)
    poison_mix: PoisonMix = added_field("replace")
    # defenses, in the order they act: "none", "jpeg", "jpeg,cutout", "at:eps=4/255" (see
    # uebench.defenses.pipeline); stored canonically (DefensePipeline.spec)
    defense: str = "none"
    device: str = "auto"

    def __post_init__(self) -> None:
        check_number("seed", self.seed, low=0)
        if self.init_seed is not None:
            check_number("init_seed", self.init_seed, low=0)
        ratio = self.poison_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) \
                or not 0 <= ratio <= 1:  # NaN fails both comparisons
            raise ConfigError(
                f"poison_ratio must be a number in [0, 1] (the share of the training images that "
                f"take their poisoned version; 1, the default, is all of them), got {ratio!r}: "
                "pass e.g. --poison-ratio 0.5 or poison_ratio=0.5")
        coerce("poison_mix", self.poison_mix, PoisonMix)
        if self.poison_mix == "drop" and self.poison is not None and ratio == 1:
            raise ConfigError(
                "poison_mix drop leaves the protected images out, and at poison_ratio 1 every "
                "image is protected, so nothing is left to train on: pass a poison_ratio below 1 "
                "(e.g. --poison-ratio 0.5), or poison_mix replace")


# ----------------------------------------------------------------------------- checks


def check_number(key: str, value: float, *, low: float | None = None, high: float | None = None,
                 strict: bool = False) -> None:
    """Raise a :class:`ConfigError` naming ``key`` unless ``value`` is finite and inside
    [low, high] (``strict``: > low). Every config section checks its numbers with it."""
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


def without_poison(cfg: RunCfg) -> RunCfg:
    """``cfg`` of its clean run: no poison, and so no poisoned share or mix. A clean run is the same
    run whatever ratio its poisoned siblings use, so one clean run serves them all (a grid with a
    ``poison_ratio`` axis trains its clean runs once)."""
    return dataclasses.replace(cfg, poison=None, poison_ratio=1.0, poison_mix="replace")


def canonical(cfg: RunCfg) -> RunCfg:
    """``cfg`` with its defense spec validated and in canonical form (one spelling per run)."""
    return dataclasses.replace(cfg, defense=DefensePipeline.from_spec(cfg.defense).spec())
