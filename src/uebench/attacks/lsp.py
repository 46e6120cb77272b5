"""LSP: linearly separable synthetic perturbations (Yu et al., KDD 2022, arXiv 2111.00898,
"Availability Attacks Create Shortcuts"; code dayu11/Availability-Attacks-Create-Shortcuts).

1. Draw points with scikit-learn ``make_classification``: ``C * gh * gw`` features, all
   informative, ``class_sep`` 10, one cluster per class, no label flips.
2. Reshape each point to a ``C x gh x gw`` grid and blow every entry up to a
   ``patch x patch`` block (``repeat_interleave``), cropped to ``H x W``: a patchy image.
3. Rescale every synthetic image to L2 norm ``eps`` exactly.
4. Give each training image the synthetic image of a random, unused point of its own class;
   add and clip to [0, 1] (clipping can only shrink the norm).

Grid: ``gh = max(1, round(H / patch_size))`` (same for the width) and the block side is
``ceil(H / gh)``, so 32 px with patch 8 gives the original 4 x 4 grid of 8 px blocks, and 28 px
(Fashion-MNIST) gives 4 x 4 blocks of 7 px.

Budget: L2. The default ``eps=None`` means the original's 6/255-equivalent radius for the image
size, :func:`lsp_radius` = ``sqrt(C*H*W) * 6 / 255`` (the L2 norm of a uniform 6/255 change):
1.304 for 3 x 32 x 32 (the paper's value), 0.659 for 1 x 28 x 28, 9.13 for 3 x 224 x 224.
``run_attack`` fills the value in before the call, so the resolved parameters and the poison
manifest always declare the radius actually used; pass ``eps`` to override it.

Input ``x`` float in [0, 1], N x C x H x W; returns ``delta`` shaped like ``x``. Deterministic
given ``rt.seed`` (``random_state`` of make_classification and the point assignment).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from uebench.attacks.base import clamp_to_image, register_attack
from uebench.errors import UebenchError
from uebench.runtime import Runtime, derive_seed

_STREAM = 7002


def lsp_radius(image_shape: tuple[int, int, int], pixels: float = 6.0) -> float:
    """L2 radius of a uniform change of ``pixels``/255: ``sqrt(C*H*W) * pixels / 255``."""
    c, h, w = image_shape
    return math.sqrt(c * h * w) * pixels / 255.0


def patch_grid(side: int, patch_size: int) -> tuple[int, int]:
    """(number of blocks, block side) covering ``side`` pixels, blocks close to ``patch_size``."""
    blocks = max(1, int(side / patch_size + 0.5))
    return blocks, math.ceil(side / blocks)


def synthetic_patterns(
    labels: np.ndarray, image_shape: tuple[int, int, int], num_classes: int, *,
    patch_size: int, class_sep: float, seed: int,
) -> np.ndarray:
    """One class-clustered patchy pattern per label (unit L2 norm), float32 N x C x H x W."""
    c, h, w = image_shape
    (gh, bh), (gw, bw) = patch_grid(h, patch_size), patch_grid(w, patch_size)
    features = c * gh * gw
    if num_classes > 2**features:  # make_classification puts the clusters on hypercube vertices
        raise UebenchError(
            f"lsp: {num_classes} classes need more than {features} features ({c} x {gh} x {gw} "
            "blocks); use a smaller patch_size"
        )
    from sklearn.datasets import make_classification  # heavy import, only when used

    counts = np.bincount(labels, minlength=num_classes)
    per_class = max(int(counts.max()), 1)
    # weights=None gives exactly n_samples // n_classes points per class
    points, point_labels = make_classification(
        n_samples=per_class * num_classes, n_features=features, n_informative=features,
        n_redundant=0, n_repeated=0, n_classes=num_classes, n_clusters_per_class=1,
        class_sep=class_sep, flip_y=0.0, random_state=seed % (2**32),
    )
    rng = np.random.default_rng(derive_seed(seed, 1))
    chosen = np.empty(labels.shape[0], dtype=np.int64)
    for k in np.flatnonzero(counts):  # a random, distinct point of the class for each image
        pool = np.flatnonzero(point_labels == k)
        chosen[labels == k] = rng.permutation(pool)[: counts[k]]
    grid = torch.from_numpy(points[chosen].astype(np.float32)).view(-1, c, gh, gw)
    images = grid.repeat_interleave(bh, dim=2).repeat_interleave(bw, dim=3)[:, :, :h, :w]
    norms = images.flatten(1).norm(dim=1).clamp_min(1e-12)
    return (images / norms[:, None, None, None]).numpy()


@register_attack(
    "lsp",
    norm="l2",
    presets={"apbench": {}},  # APBench: the same 6/255-equivalent radius (1.304 at 32 px)
    eps_for_shape=lambda shape: lsp_radius(shape),
    description="class-clustered synthetic patch patterns (make_classification), L2 = eps",
    paper="Yu et al., KDD 2022, arXiv 2111.00898",
)
def lsp(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    num_classes: int,
    rt: Runtime,
    workdir: Path | None = None,
    eps: float | None = None,
    patch_size: int = 8,
    class_sep: float = 10.0,
) -> torch.Tensor:
    """Linearly separable synthetic perturbations.

    Args:
        x: clean images, float in [0, 1], N x C x H x W.
        y: int64 labels (N,).
        num_classes: number of classes.
        rt: runtime; ``rt.seed`` drives make_classification and the point assignment.
        workdir: unused.
        eps: L2 radius per image in [0, 1] units; ``None`` = :func:`lsp_radius` of the image size
            (1.304 at 3 x 32 x 32).
        patch_size: target block side in pixels (8 in the original).
        class_sep: make_classification's class separation (10 in the original).

    Returns:
        ``delta`` shaped like ``x``, L2 norm ``eps`` before clipping to the image range.
    """
    if eps is None:
        eps = lsp_radius(tuple(x.shape[1:]))
    seed = derive_seed(rt.seed, _STREAM)
    patterns = synthetic_patterns(
        y.cpu().numpy(), tuple(x.shape[1:]), num_classes,
        patch_size=patch_size, class_sep=class_sep, seed=seed,
    )
    delta = torch.from_numpy(patterns).to(device=x.device, dtype=x.dtype) * eps
    return clamp_to_image(x, delta)
