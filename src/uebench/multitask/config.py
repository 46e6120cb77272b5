"""Configuration of a multi-task training run, resolved like a single-task one.

:class:`MultiTaskRunCfg` reuses :class:`~uebench.config.TrainCfg` and
:class:`~uebench.config.SalCfg` and the strict coercer of :mod:`uebench.config`; only the data
(a :data:`~uebench.multitask.dataset.MULTITASK_DATASETS` key with loader options), the model (a
backbone with one head per task) and the task selection are its own. :func:`resolve_multitask_cfg`
is :func:`uebench.config.resolve_layers`, the layering of single-task runs, over the multi-task
datasets' recipes::

    dataclass defaults < the dataset's recipe < YAML file < CLI flags < key=value

The recipe is registry metadata (``@register_multitask_dataset(..., recipe={...})``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from uebench.config import (
    RUN_FLAGS,
    DataCfg,
    Flag,
    SalCfg,
    TrainCfg,
    check_number,
    flag_paths,
    resolve_layers,
)
from uebench.errors import ConfigError, UebenchError
from uebench.multitask.dataset import MULTITASK_DATASETS
from uebench.train.rundir import read_config


@dataclasses.dataclass(frozen=True)
class MultiTaskDataCfg(DataCfg):
    """The single-task data settings (subsets, subset seed) for a registered multi-task dataset,
    plus its loader options (``options``, e.g. ``{n: 2000, image_size: 32}``) and test split."""

    name: str = "scenes"
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    test_split: str = "test"


@dataclasses.dataclass(frozen=True)
class MultiTaskModelCfg:
    """A shared backbone (:data:`~uebench.multitask.backbones.BACKBONES`) with per-task heads."""

    backbone: str = "lenet"
    width: float = 1.0
    decoder_channels: int = 64
    normalize: bool = True  # per-channel train-set mean/std inside the model

    def __post_init__(self) -> None:
        check_number("model.width", self.width, low=0, strict=True)
        check_number("model.decoder_channels", self.decoder_channels, low=1)


@dataclasses.dataclass(frozen=True)
class MultiTaskRunCfg:
    """Everything that defines one multi-task training run (and its run id).

    ``tasks``: the tasks the model has heads for and is trained on (``()`` = every task of the
    dataset); ``weights``: loss weights ``{task: w}`` (``{}`` = 1 for each task, the paper's plain
    sum). ``sal``: per-task SAL after every epoch (each task's loss, its own layers: the shared
    backbone and its head). ``poison``: a poison directory made for the same images.
    """

    data: MultiTaskDataCfg = dataclasses.field(default_factory=MultiTaskDataCfg)
    model: MultiTaskModelCfg = dataclasses.field(default_factory=MultiTaskModelCfg)
    train: TrainCfg = dataclasses.field(default_factory=lambda: TrainCfg(augment="none"))
    sal: SalCfg = dataclasses.field(default_factory=SalCfg)
    tasks: tuple[str, ...] = ()
    weights: dict[str, float] = dataclasses.field(default_factory=dict)
    seed: int = 0
    init_seed: int | None = None
    poison: str | None = None
    device: str = "auto"

    def __post_init__(self) -> None:
        check_number("seed", self.seed, low=0)
        if self.init_seed is not None:
            check_number("init_seed", self.init_seed, low=0)
        if len(set(self.tasks)) != len(self.tasks):
            raise ConfigError(f"tasks must not repeat a task, got {list(self.tasks)}")
        for task, weight in self.weights.items():
            if self.tasks and task not in self.tasks:
                raise ConfigError(f"weights.{task}: '{task}' is not one of tasks "
                                  f"{list(self.tasks)}")
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                raise ConfigError(f"weights.{task} must be a number, got {weight!r}")
            check_number(f"weights.{task}", weight, low=0)


# the single-task flags with --dataset naming a multi-task dataset, --model the backbone,
# --tasks added and --defense, --poison-ratio and --poison-mix refused (a layer above the YAML
# file, below key=value)
MULTITASK_FLAGS: dict[str, Flag] = {
    # defenses and partial poisoning act on classification sets: not multi-task settings
    **{k: v for k, v in RUN_FLAGS.items() if k not in ("defense", "poison_ratio", "poison_mix")},
    "dataset": Flag("data.name", "multi-task dataset (default scenes; uebench datasets)"),
    "model": Flag("model.backbone", "backbone: lenet (default), resnet10, resnet18"),
    "tasks": Flag("tasks", "multi-task run on a multi-task dataset (default scenes): the tasks "
                           "to train, comma-separated, or 'all' (uebench multitask train)"),
}
FLAG_KEYS = flag_paths(MULTITASK_FLAGS)


def resolve_multitask_cfg(*, config_file: str | Path | None = None,
                          overrides: Sequence[str] = (), defense: str | None = None,
                          poison_ratio: float | None = None, poison_mix: str | None = None,
                          **flags: Any) -> MultiTaskRunCfg:
    """The one way a :class:`MultiTaskRunCfg` is made from user input (module docstring).

    ``flags`` use the short names of :data:`MULTITASK_FLAGS` (``None`` = not given); ``tasks``
    may be a comma-separated string. ``defense`` is accepted only as ``None``/``"none"``: the
    defenses act on classification batches and are not defined for dense targets; likewise
    ``poison_ratio`` only as ``None``/1 and ``poison_mix`` as ``None``/``"replace"`` (a multi-task
    poison covers the whole set).
    """
    if defense not in (None, "none"):
        raise ConfigError(f"--defense {defense}: defenses are not available for multi-task "
                          "runs (they transform classification batches); drop --defense")
    if poison_ratio not in (None, 1) or poison_mix not in (None, "replace"):
        raise ConfigError("--poison-ratio / --poison-mix: partial and mixed poisoning is not "
                          "available for multi-task runs (a multi-task poison covers the whole "
                          "set); drop them")
    # multi-task training never crops (it would misalign dense targets): no augmentation unless
    # the recipe or the user asks for flips
    return resolve_layers(MultiTaskRunCfg, MULTITASK_DATASETS, config_file=config_file,
                          overrides=overrides, flags=flags, flag_keys=FLAG_KEYS,
                          train_base={"augment": "none"})


def load_multitask_config(run_dir: Path | str) -> MultiTaskRunCfg:
    """The resolved config a multi-task run directory was trained with (``config.yaml``)."""
    return read_config(run_dir, MultiTaskRunCfg)


def is_multitask_run(run_dir: Path | str) -> bool:
    """Whether ``run_dir`` holds a multi-task run (its config.yaml reads as one)."""
    try:
        load_multitask_config(run_dir)
    except (UebenchError, TypeError):
        return False
    return True
