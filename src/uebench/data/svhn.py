"""SVHN cropped digits (Netzer et al. 2011), format 2: ``train_32x32.mat`` and ``test_32x32.mat``.

The MATLAB files hold ``X`` as 32 x 32 x 3 x N uint8 (H, W, C, N) and ``y`` as N x 1 labels 1..10,
where 10 stands for the digit 0; we map it to label 0 so label == digit (torchvision does the
same). ``extra_32x32.mat`` (531k images) is not used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from uebench.data import recipes
from uebench.data.base import ImageSet, find_files, register_dataset
from uebench.errors import UebenchError

SVHN_CLASSES = tuple(str(d) for d in range(10))
_SVHN_HOW = "uebench download svhn (train_32x32.mat, test_32x32.mat from ufldl.stanford.edu)"


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N x 3 x 32 x 32 uint8) and labels 0..9 from one SVHN format-2 ``.mat`` file.

    Raises:
        UebenchError: unreadable file, missing ``X``/``y``, or wrong shapes/labels.
    """
    from scipy.io import loadmat  # deferred: scipy.io is only needed for SVHN
    from scipy.io.matlab import MatReadError

    fix = f"Delete it and get it again: {_SVHN_HOW}."
    try:
        mat = loadmat(path, variable_names=("X", "y"))
    except (MatReadError, ValueError, OSError, TypeError, NotImplementedError) as err:
        # NotImplementedError: MATLAB v7.3 (HDF5) files, which the official release is not
        raise UebenchError(f"{path}: not a readable SVHN .mat file ({err}). {fix}") from None
    if "X" not in mat or "y" not in mat:
        raise UebenchError(f"{path}: no 'X'/'y' variables; not an SVHN format-2 file. {fix}")
    x, y = np.asarray(mat["X"]), np.asarray(mat["y"]).reshape(-1)
    if x.ndim != 4 or x.shape[2] != 3 or x.shape[3] != y.shape[0]:
        raise UebenchError(f"{path}: X {x.shape}, y {mat['y'].shape}; expected HxWx3xN, Nx1. {fix}")
    if x.dtype != np.uint8:
        raise UebenchError(f"{path}: X is {x.dtype}, expected uint8. {fix}")
    y = y.astype(np.int64)
    if y.size and (y.min() < 1 or y.max() > 10):
        raise UebenchError(f"{path}: labels outside 1..10. {fix}")
    # H, W, C, N -> N, C, H, W
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)), y % 10


@register_dataset(
    "svhn", recipe=recipes.SVHN, sizes=(73257, 26032),
    description="SVHN cropped digits (format 2), 3x32x32, 10 classes, 73257/26032",
    files="train_32x32.mat, test_32x32.mat",
    how_to_get=_SVHN_HOW,
)
def svhn(root: Path | None, train: bool) -> ImageSet:
    name = "train_32x32.mat" if train else "test_32x32.mat"
    folder = find_files("svhn", root, ("svhn", "SVHN", ""), (name,), how_to_get=_SVHN_HOW)
    x, y = read_svhn_mat(folder / name)
    return ImageSet(
        torch.from_numpy(x), torch.from_numpy(y), SVHN_CLASSES, "svhn",
        {"source": f"svhn (format 2 .mat, {folder / name})"},
    )
