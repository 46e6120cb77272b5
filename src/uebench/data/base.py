"""Dataset contract: in-memory uint8 images (N x C x H x W), int64 labels and class names.

Every dataset is a function registered with ``@register_dataset(name, ...)`` taking
``(root: Path | None, train: bool)`` and returning an :class:`ImageSet`. ``root`` is the
directory the user passed (``--data-dir`` / ``UEBENCH_DATA``) or ``None``; each loader resolves
its own files with :func:`find_files`, which raises :class:`DataNotFoundError` naming every
place it looked and how to get the data.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from uebench.errors import DataNotFoundError, UebenchError
from uebench.registry import Registry


@dataclass(frozen=True)
class ImageSet:
    """Images ``x`` (uint8, N x C x H x W), labels ``y`` (int64, N) and class names."""

    x: torch.Tensor
    y: torch.Tensor
    classes: tuple[str, ...]
    name: str = ""
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.x.dtype != torch.uint8 or self.x.dim() != 4:
            raise ValueError(
                f"ImageSet.x must be uint8 N x C x H x W, got {self.x.dtype} {tuple(self.x.shape)}"
            )
        if self.y.dtype != torch.int64 or self.y.shape != (self.x.shape[0],):
            raise ValueError(
                f"ImageSet.y must be int64 of shape ({self.x.shape[0]},), "
                f"got {self.y.dtype} {tuple(self.y.shape)}"
            )

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.x.shape[1:]
        return int(c), int(h), int(w)

    def float(self) -> torch.Tensor:
        """Images as float32 in [0, 1]."""
        return self.x.float().div_(255.0)

    def subset(self, index: torch.Tensor | Sequence[int]) -> ImageSet:
        index = torch.as_tensor(index, dtype=torch.long)
        meta = dict(self.meta)
        parent = meta.get("indices")
        meta["indices"] = (torch.as_tensor(parent)[index] if parent is not None else index).clone()
        return ImageSet(
            self.x[index].contiguous(), self.y[index].contiguous(), self.classes, self.name, meta
        )

    @property
    def indices(self) -> torch.Tensor:
        """Indices of these samples in the full split they were taken from."""
        idx = self.meta.get("indices")
        return torch.arange(len(self)) if idx is None else torch.as_tensor(idx)

    def channel_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std of the images in [0, 1] (for in-model normalization)."""
        xf = self.x.double().div(255.0)
        mean = xf.mean(dim=(0, 2, 3))
        std = xf.std(dim=(0, 2, 3)).clamp_min(1e-3)
        return tuple(float(v) for v in mean), tuple(float(v) for v in std)


@dataclass(frozen=True)
class Splits:
    """A dataset's train and test splits."""

    name: str
    train: ImageSet
    test: ImageSet

    @property
    def classes(self) -> tuple[str, ...]:
        return self.train.classes


DatasetFn = Callable[[Path | None, bool], ImageSet]
DATASETS: Registry[DatasetFn] = Registry("dataset")


def register_dataset(
    name: str, *, description: str, kind: str = "image", files: str = "", how_to_get: str = "",
    recipe: dict[str, Any] | None = None, sizes: tuple[int, int] | None = None,
) -> Callable[[DatasetFn], DatasetFn]:
    """Register a dataset loader ``fn(root, train) -> ImageSet``.

    Args:
        name: registry key (``fashion-mnist``, ``cifar10`` ...).
        description: one line for ``uebench datasets``.
        kind: ``image`` or ``tabular`` (tabular data is stored as 1 x 1 x F uint8 "images").
        files: what files the loader expects (for error messages and docs).
        how_to_get: how a user obtains the files.
        recipe: default training settings for this data (a partial ``TrainCfg``, see
            :mod:`uebench.data.recipes`); the layer just above the dataclass defaults.
        sizes: the complete (train, test) image counts of a fixed dataset, so that
            ``uebench datasets`` can tell a complete copy from an incomplete one.
    """
    return DATASETS.register(
        name, description=description, kind=kind, files=files, how_to_get=how_to_get,
        recipe=dict(recipe or {}), sizes=sizes,
    )


def data_roots(root: Path | str | None) -> list[Path]:
    """Dataset search roots, in order: explicit root, $UEBENCH_DATA, ./data, ~/.cache/uebench."""
    roots: list[Path] = []
    if root is not None:
        roots.append(Path(root).expanduser())
    env = os.environ.get("UEBENCH_DATA")
    if env:
        roots.extend(Path(p).expanduser() for p in env.split(os.pathsep) if p)
    roots.append(Path("data"))
    roots.append(Path.home() / ".cache" / "uebench")
    return roots


_FOUND: list[list[Path]] = []  # active recorders of the directories find_files returned


def find_files(
    dataset: str,
    root: Path | str | None,
    candidates: Sequence[str],
    required: Sequence[str],
    *,
    system_dirs: Sequence[str] = (),
    how_to_get: str = "",
) -> Path:
    """Return the first directory that holds all ``required`` files.

    Searches ``<r>/<c>`` for every root ``r`` in :func:`data_roots` and candidate subdirectory ``c``
    (``""`` = the root itself), then the absolute ``system_dirs``.
    """
    looked: list[Path] = []
    for r in data_roots(root):
        for c in candidates:
            looked.append(r / c if c else r)
    looked.extend(Path(s) for s in system_dirs)
    for d in looked:
        if all((d / f).exists() for f in required):
            for record in _FOUND:
                record.append(d.resolve())
            return d
    where = "\n  ".join(str(p) for p in dict.fromkeys(looked))
    raise DataNotFoundError(
        f"{dataset}: could not find {', '.join(required)}. Looked in:\n  {where}\n"
        f"How to get it: {how_to_get or 'see docs/datasets.md'}\n"
        "Then pass --data-dir DIR (or set UEBENCH_DATA=DIR)."
    )


def stratified_subset(y: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Sorted indices of a seeded, class-stratified subset of size ``n`` (largest remainders)."""
    total = int(y.shape[0])
    if n >= total:
        return torch.arange(total)
    if n <= 0:
        raise UebenchError(f"subset size must be positive, got {n}")
    rng = np.random.default_rng(seed)
    labels = y.numpy()
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * n / total
    take = np.floor(quota).astype(int)
    remainder = n - int(take.sum())
    if remainder > 0:  # hand out the rest by largest fractional part (ties: lowest class)
        order = np.argsort(-(quota - take), kind="stable")
        take[order[:remainder]] += 1
    picked = []
    for cls, k in zip(classes, take):
        idx = np.flatnonzero(labels == cls)
        picked.append(rng.choice(idx, size=int(k), replace=False))
    return torch.from_numpy(np.sort(np.concatenate(picked))).long()


def load_dataset(
    name: str,
    *,
    data_dir: Path | str | None = None,
    train_size: int | None = None,
    test_size: int | None = None,
    seed: int = 0,
) -> Splits:
    """Load a registered dataset's train/test splits, optionally as stratified seeded subsets.

    Refuses (rather than silently adjusting): a ``data_dir`` that does not exist, train and test
    files found in different places (two copies mixed), and a subset larger than its split.
    """
    fn = DATASETS.get(name)
    root = Path(data_dir) if data_dir is not None else None
    if root is not None and not root.expanduser().is_dir():
        raise UebenchError(f"--data-dir {root} does not exist (or is not a directory): pass the "
                           f"directory that holds the {name} files")
    places: list[list[Path]] = []
    for train_split in (True, False):
        _FOUND.append([])
        try:
            split = fn(root, train_split)
        finally:
            places.append(_FOUND.pop())
        if train_split:
            train = split
        else:
            test = split
    if places[0] and places[1] and places[0][0] != places[1][0]:
        raise UebenchError(
            f"{name}: the training files were found in {places[0][0]} but the test files in "
            f"{places[1][0]}: two different copies would be mixed. Keep one complete copy, or "
            "pass --data-dir to choose it")
    for what, size, split in (("--train-size", train_size, train), ("--test-size", test_size,
                                                                      test)):
        if size is not None and size > len(split):
            raise UebenchError(f"{what} {size} is larger than {name}'s split ({len(split)} "
                               f"images): use at most {len(split)}, or leave it out for all")
    if train_size is not None and train_size < len(train):
        train = train.subset(stratified_subset(train.y, train_size, seed))
    if test_size is not None and test_size < len(test):
        test = test.subset(stratified_subset(test.y, test_size, seed + 1))
    return Splits(name, train, test)


def from_numpy(
    x: np.ndarray, y: np.ndarray, classes: Sequence[str], name: str, layout: str = "NCHW"
) -> ImageSet:
    """Build an ImageSet from numpy arrays (``layout`` NCHW, NHWC or NHW)."""
    x = np.ascontiguousarray(x)
    if layout == "NHWC":
        x = x.transpose(0, 3, 1, 2)
    elif layout == "NHW":
        x = x[:, None]
    elif layout != "NCHW":
        raise ValueError(f"unknown layout {layout}")
    return ImageSet(
        torch.from_numpy(np.ascontiguousarray(x, dtype=np.uint8)),
        torch.from_numpy(np.asarray(y, dtype=np.int64)),
        tuple(classes),
        name,
    )
