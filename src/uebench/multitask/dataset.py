"""Multi-task data contract: uint8 images plus one target tensor per task, and their registry.

Every multi-task dataset is a function registered with ``@register_multitask_dataset(name, ...)``
taking ``(root: Path | None, split: str, **options)`` and returning a :class:`MultiTaskSet`;
:func:`load_multitask` looks it up, checks the split and the options, and takes seeded subsets.
The single-task contract (:class:`uebench.data.ImageSet`) is unchanged; this one adds a dict of
targets, described by :class:`~uebench.multitask.tasks.TaskSpec` (paper §3.4, arXiv:2509.08058).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from uebench.errors import ConfigError, UebenchError
from uebench.multitask.tasks import TaskSpec
from uebench.registry import Registry
from uebench.runtime import derive_seed


@dataclass(frozen=True)
class MultiTaskSet:
    """Images ``x`` (uint8, N x C x H x W) with ``targets[task]`` described by ``tasks[task]``.

    Target formats per task kind are listed in :mod:`uebench.multitask.tasks`; every target's
    first dimension is N. ``meta`` holds provenance (``source``) and, after :meth:`subset`, the
    ``indices`` of the samples in the full split.
    """

    x: torch.Tensor
    targets: Mapping[str, torch.Tensor]
    tasks: Mapping[str, TaskSpec]
    name: str = ""
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.x.dtype != torch.uint8 or self.x.dim() != 4:
            raise UebenchError(
                f"MultiTaskSet.x must be uint8 N x C x H x W, got {self.x.dtype} "
                f"{tuple(self.x.shape)}"
            )
        if set(self.targets) != set(self.tasks):
            raise UebenchError(
                f"MultiTaskSet: targets {sorted(self.targets)} and task specs "
                f"{sorted(self.tasks)} name different tasks"
            )
        if not self.tasks:
            raise UebenchError("MultiTaskSet needs at least one task")
        n, hw = int(self.x.shape[0]), (int(self.x.shape[2]), int(self.x.shape[3]))
        for task, spec in self.tasks.items():
            spec.check(task, self.targets[task], n, hw)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(self.tasks)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.x.shape[1:]
        return int(c), int(h), int(w)

    @property
    def indices(self) -> torch.Tensor:
        """Indices of these samples in the full split they were taken from."""
        idx = self.meta.get("indices")
        return torch.arange(len(self)) if idx is None else torch.as_tensor(idx)

    def float(self) -> torch.Tensor:
        """Images as float32 in [0, 1]."""
        return self.x.float().div_(255.0)

    def subset(self, index: torch.Tensor | Sequence[int]) -> MultiTaskSet:
        """The samples at ``index`` (all tasks), remembering their indices in the full split."""
        index = torch.as_tensor(index, dtype=torch.long)
        meta = dict(self.meta)
        meta["indices"] = self.indices[index].clone()
        targets = {t: v[index].contiguous() for t, v in self.targets.items()}
        return replace(self, x=self.x[index].contiguous(), targets=targets, meta=meta)

    def select(self, tasks: Sequence[str]) -> MultiTaskSet:
        """The same samples with only ``tasks`` (in that order), e.g. a pair of the task matrix."""
        unknown = [t for t in tasks if t not in self.tasks]
        if unknown or not tasks:
            raise UebenchError(
                f"{self.name}: cannot select tasks {list(tasks)}; it has {list(self.tasks)}"
            )
        return replace(
            self, targets={t: self.targets[t] for t in tasks},
            tasks={t: self.tasks[t] for t in tasks},
        )

    def with_images(self, x: torch.Tensor) -> MultiTaskSet:
        """The same targets with other images of the same shape (e.g. a poisoned copy)."""
        if tuple(x.shape) != tuple(self.x.shape):
            raise UebenchError(
                f"with_images: images {tuple(x.shape)} differ from {tuple(self.x.shape)}"
            )
        return replace(self, x=x)

    def channel_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std of the images in [0, 1] (for in-model normalization)."""
        xf = self.x.double().div(255.0)
        std = xf.std(dim=(0, 2, 3)).clamp_min(1e-3)
        return tuple(float(v) for v in xf.mean(dim=(0, 2, 3))), tuple(float(v) for v in std)


MultiTaskDatasetFn = Callable[..., MultiTaskSet]
MULTITASK_DATASETS: Registry[MultiTaskDatasetFn] = Registry("multi-task dataset")


def register_multitask_dataset(
    name: str, *, description: str, splits: tuple[str, ...] = ("train", "test"),
    files: str = "", how_to_get: str = "", recipe: dict[str, Any] | None = None,
    probe: dict[str, Any] | None = None,
) -> Callable[[MultiTaskDatasetFn], MultiTaskDatasetFn]:
    """Register ``fn(root: Path | None, split: str, **options) -> MultiTaskSet``.

    Args:
        name: registry key.
        description: one line for listings.
        splits: the split names ``fn`` accepts.
        files: the files the loader expects ("" for generated data).
        how_to_get: how a user obtains the files.
        recipe: default training settings (a partial ``TrainCfg``) for runs on this data, the
            layer just above the dataclass defaults (:mod:`uebench.multitask.config`).
        probe: loader options that make a small load which still reads the files, for
            ``uebench datasets`` to say whether the dataset is available in seconds.
    """
    return MULTITASK_DATASETS.register(
        name, description=description, splits=splits, files=files, how_to_get=how_to_get,
        recipe=dict(recipe or {}), probe=dict(probe or {}),
    )


def dataset_options(name: str) -> dict[str, Any]:
    """The keyword options of a registered loader and their defaults."""
    params = inspect.signature(MULTITASK_DATASETS.get(name)).parameters
    return {p.name: p.default for p in params.values() if p.kind is p.KEYWORD_ONLY}


def load_multitask(
    name: str, split: str = "train", *, data_dir: Path | str | None = None,
    size: int | None = None, seed: int = 0, **options: Any,
) -> MultiTaskSet:
    """Load one split of a registered multi-task dataset.

    Args:
        name: :data:`MULTITASK_DATASETS` key.
        split: one of the dataset's ``splits``.
        data_dir: where to look for files first (generated datasets ignore it).
        size: keep a seeded random subset of this many samples (sorted indices).
        seed: seed of that subset.
        **options: the loader's keyword options (:func:`dataset_options`).

    Raises:
        ConfigError: unknown split or option.
    """
    fn = MULTITASK_DATASETS.get(name)
    splits = MULTITASK_DATASETS.meta(name)["splits"]
    if split not in splits:
        raise ConfigError(f"{name}: unknown split '{split}'; valid splits: {', '.join(splits)}")
    valid = dataset_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(
            f"{name}: unknown option(s) {', '.join(unknown)}; valid: {', '.join(valid) or 'none'}"
        )
    data = fn(Path(data_dir) if data_dir is not None else None, split, **options)
    if size is not None and size < len(data):
        if size <= 0:
            raise ConfigError(f"{name}: size must be positive, got {size}")
        gen = torch.Generator().manual_seed(derive_seed(seed, len(data)))
        data = data.subset(torch.randperm(len(data), generator=gen)[:size].sort().values)
    return data
