"""``multi-fashion-mnist`` / ``multi-mnist``: two overlapped items, two classification tasks.

The MultiMNIST construction of Sener & Koltun ("Multi-Task Learning as Multi-Objective
Optimization", NeurIPS 2018, arXiv:1810.04650), also used by Pareto MTL: one 28 x 28 item is put
in the top-left corner and another in the bottom-right corner of a 36 x 36 canvas (where they
overlap, the brighter pixel wins), and the canvas is resized back to 28 x 28 (bilinear,
antialiased). Tasks ``left`` and ``right`` classify the two items (10 classes each).

The pairs are drawn from a ``torch.Generator`` seeded by ``derive_seed(data_seed, 2, split)``: the
left items run through seeded permutations of the split, the right items through others, so every
item appears once as left (for ``n`` up to the split size) and pairs are reproducible.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from uebench.data import DATASETS, ImageSet
from uebench.errors import ConfigError
from uebench.multitask.dataset import MultiTaskSet, register_multitask_dataset
from uebench.multitask.tasks import TaskSpec
from uebench.runtime import derive_seed

CANVAS = 36
_SPLITS = ("train", "test")


def _permutations(total: int, n: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` indices from back-to-back random permutations of ``range(total)``."""
    parts = [torch.randperm(total, generator=gen) for _ in range(-(-n // total))]
    return torch.cat(parts)[:n]


def overlay_pairs(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Overlay uint8 N x C x S x S items at opposite corners of a 36 x 36 canvas; S x S uint8."""
    n, c, side, _ = left.shape
    if side > CANVAS or right.shape != left.shape:
        raise ConfigError(f"overlay_pairs: items must match and be <= {CANVAS} px, got "
                          f"{tuple(left.shape)}, {tuple(right.shape)}")
    shift = CANVAS - side
    canvas = torch.zeros(n, c, CANVAS, CANVAS)
    canvas[:, :, :side, :side] = left.float()
    corner = canvas[:, :, shift:, shift:]
    canvas[:, :, shift:, shift:] = torch.maximum(corner, right.float())
    small = F.interpolate(canvas, size=(side, side), mode="bilinear", align_corners=False,
                          antialias=True)
    return small.round().clamp(0, 255).to(torch.uint8)


def compose(base: ImageSet, n: int, gen: torch.Generator, name: str) -> MultiTaskSet:
    """``n`` two-item images from ``base`` with tasks ``left`` and ``right``."""
    if n < 1:
        raise ConfigError(f"{name}: n must be >= 1, got {n}")
    li = _permutations(len(base), n, gen)
    ri = _permutations(len(base), n, gen)
    spec = TaskSpec("classification", base.num_classes, base.classes)
    meta = {"source": f"{name}: pairs of {base.meta.get('source', base.name)}",
            "left_index": li, "right_index": ri}
    return MultiTaskSet(overlay_pairs(base.x[li], base.x[ri]),
                        {"left": base.y[li], "right": base.y[ri]},
                        {"left": spec, "right": spec}, name, meta)


def _load(dataset: str, name: str, root: Path | None, split: str, n: int | None,
          seed: int) -> MultiTaskSet:
    base = DATASETS.get(dataset)(root, split == "train")
    gen = torch.Generator().manual_seed(derive_seed(seed, 2, _SPLITS.index(split)))
    return compose(base, len(base) if n is None else int(n), gen, name)


# no flips: a mirrored canvas would swap the left and right items under unchanged labels
_RECIPE = {"augment": "none"}


@register_multitask_dataset(
    "multi-fashion-mnist",
    description="MultiFashion (Sener & Koltun 2018 construction): two overlapped Fashion-MNIST "
    "items, tasks left/right (10 classes), 1x28x28",
    files="the fashion-mnist IDX files", how_to_get=DATASETS.meta("fashion-mnist")["how_to_get"],
    recipe=_RECIPE, probe={"n": 2},
)
def multi_fashion_mnist(root: Path | None, split: str, *, n: int | None = None,
                        data_seed: int = 0) -> MultiTaskSet:
    """``n`` pairs (default: as many as the split has images)."""
    return _load("fashion-mnist", "multi-fashion-mnist", root, split, n, data_seed)


@register_multitask_dataset(
    "multi-mnist",
    description="MultiMNIST (Sener & Koltun 2018): two overlapped MNIST digits, tasks left/right",
    files="the mnist IDX files", how_to_get=DATASETS.meta("mnist")["how_to_get"],
    recipe=_RECIPE, probe={"n": 2},
)
def multi_mnist(root: Path | None, split: str, *, n: int | None = None,
                data_seed: int = 0) -> MultiTaskSet:
    """``n`` pairs (default: as many as the split has images)."""
    return _load("mnist", "multi-mnist", root, split, n, data_seed)
