"""Synthetic datasets that need no files: ``synthetic`` (test images) and ``toy`` (paper §3.1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from uebench.data import recipes
from uebench.data.base import ImageSet, register_dataset

_SYN_CLASSES = tuple(f"pattern{i}" for i in range(10))


def _synthetic(train: bool, n: int, side: int = 16, channels: int = 3) -> ImageSet:
    # Class-dependent smooth patterns plus noise: learnable in a few epochs by a tiny CNN, yet not
    # trivially separable by one pixel, so shortcut poisons have something to beat.
    rng = np.random.default_rng(1234 if train else 4321)
    proto_rng = np.random.default_rng(7)
    yy, xx = np.meshgrid(np.linspace(0, 1, side), np.linspace(0, 1, side), indexing="ij")
    protos = []
    for _ in range(10):
        fy, fx, ph = (
            proto_rng.uniform(1, 3),
            proto_rng.uniform(1, 3),
            proto_rng.uniform(0, 6.3, channels),
        )
        protos.append(np.stack([np.sin(2 * np.pi * (fy * yy + fx * xx) + p) for p in ph]))
    protos = np.stack(protos)  # 10 x C x H x W in [-1, 1]
    y = np.arange(n) % 10
    rng.shuffle(y)
    x = 0.5 + 0.25 * protos[y] + 0.18 * rng.standard_normal((n, channels, side, side))
    x = np.clip(np.round(x * 255), 0, 255).astype(np.uint8)
    return ImageSet(
        torch.from_numpy(x), torch.from_numpy(y.astype(np.int64)), _SYN_CLASSES, "synthetic"
    )


@register_dataset(
    "synthetic", recipe=recipes.SYNTHETIC,
    description="generated class-pattern images, 3x16x16, 10 classes, 1000/500 (tests, no files)",
)
def synthetic(root: Path | None, train: bool) -> ImageSet:
    return _synthetic(train, 1000 if train else 500)


@register_dataset(
    "toy", recipe=recipes.TOY,
    kind="tabular",
    description="make_classification: 5000 samples, 12 features, 10 classes (paper §3.1), 1x1x12",
)
def toy(root: Path | None, train: bool) -> ImageSet:
    """The paper's toy task; features min-max scaled on the train split, stored as uint8 1x1x12."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=5000,
        n_features=12,
        n_informative=12,
        n_redundant=0,
        n_classes=10,
        n_clusters_per_class=1,
        random_state=0,
    )
    # fixed 80/20 split (the paper does not state one)
    order = np.random.default_rng(0).permutation(5000)
    tr, te = order[:4000], order[4000:]
    lo, hi = x[tr].min(0), x[tr].max(0)
    scaled = np.clip((x - lo) / (hi - lo), 0, 1)
    q = np.round(scaled * 255).astype(np.uint8)[:, None, None, :]
    idx = tr if train else te
    classes = tuple(f"class{i}" for i in range(10))
    return ImageSet(
        torch.from_numpy(q[idx]), torch.from_numpy(y[idx].astype(np.int64)), classes, "toy"
    )
