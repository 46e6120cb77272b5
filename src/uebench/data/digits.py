"""scikit-learn's ``load_digits`` (UCI optical digits): 1,797 real 8x8 images shipped in the wheel.

Useful as the fastest real labelled image set for tests. Pixel values 0..16 are rescaled to
uint8 with ``round(v * 255 / 16)``, so 16 maps exactly to 255. There is no official train/test
split: we use a fixed class-stratified 80/20 split drawn with seed 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from uebench.data import recipes
from uebench.data.base import ImageSet, register_dataset, stratified_subset

SPLIT_SEED = 0
TRAIN_FRACTION = 0.8


@register_dataset(
    "digits", recipe=recipes.DIGITS,
    description="sklearn load_digits, 1x8x8, 10 classes, stratified 80/20 split (1438/359)",
    files="none (ships with scikit-learn)",
    how_to_get="pip install scikit-learn",
)
def digits(root: Path | None, train: bool) -> ImageSet:
    """Train (80 %) or test (20 %) part of the digits set; the split depends only on SPLIT_SEED."""
    from sklearn.datasets import load_digits  # deferred: sklearn import costs about a second

    bunch = load_digits()
    x = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # N x 1 x 8 x 8
    y = torch.from_numpy(bunch.target.astype(np.int64))
    n_train = int(round(TRAIN_FRACTION * len(y)))
    train_idx = stratified_subset(y, n_train, SPLIT_SEED)
    mask = torch.zeros(len(y), dtype=torch.bool)
    mask[train_idx] = True
    idx = train_idx if train else torch.nonzero(~mask).flatten()
    classes = tuple(str(d) for d in range(10))
    return ImageSet(
        torch.from_numpy(x)[idx].contiguous(),
        y[idx].contiguous(),
        classes,
        "digits",
        {"source": "sklearn load_digits (0..16 scaled to 0..255)"},
    )
