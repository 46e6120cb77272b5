"""MNIST and Fashion-MNIST from their IDX files (``.gz`` or uncompressed), read with plain numpy.

IDX format (LeCun et al.): a big-endian header of unsigned 32-bit integers, then raw data. The
magic number's bytes are ``0, 0, dtype, ndim``; images are ``0x00000803`` (2051: uint8, 3 dims:
count, rows, cols), labels ``0x00000801`` (2049: uint8, 1 dim: count). We validate the magic, the
header and the exact payload size, because a truncated download otherwise shows up much later as
a reshape error or, worse, as silently wrong images.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch

from uebench.data import recipes
from uebench.data.base import ImageSet, find_files, register_dataset
from uebench.errors import DataNotFoundError, UebenchError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049

FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
MNIST_CLASSES = tuple(str(d) for d in range(10))

_FASHION_HOW = (
    "apt-get install dataset-fashion-mnist (files land in /usr/share/datasets/fashion-mnist), "
    "or: uebench download fashion-mnist"
)
_MNIST_HOW = "uebench download mnist (official IDX .gz files, md5-checked)"


def _split_names(train: bool, suffix: str) -> tuple[str, str]:
    prefix = "train" if train else "t10k"
    return f"{prefix}-images-idx3-ubyte{suffix}", f"{prefix}-labels-idx1-ubyte{suffix}"


def read_idx(path: Path, *, magic: int, fix: str = "") -> np.ndarray:
    """Read one IDX file (gzip-compressed when its name ends in ``.gz``).

    Args:
        path: the file.
        magic: the expected magic number (2051 images, 2049 labels).
        fix: what the user should do if the file is broken (appended to the error).

    Returns:
        uint8 array shaped by the header: ``count x rows x cols`` or ``count``.

    Raises:
        UebenchError: the file is not gzip, is truncated, or has a wrong header.
    """
    path = Path(path)
    hint = f" {fix}" if fix else " Delete it and fetch the file again."
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                raw = fh.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:  # BadGzipFile is an OSError
        msg = f"{path}: cannot read IDX file ({err}); corrupt or truncated.{hint}"
        raise UebenchError(msg) from None
    if len(raw) < 4:
        raise UebenchError(f"{path}: {len(raw)} bytes, too short for an IDX header.{hint}")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise UebenchError(f"{path}: IDX magic {found}, expected {magic}; wrong file?{hint}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UebenchError(f"{path}: truncated IDX header.{hint}")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape, dtype=np.int64))
    if len(raw) != expected:
        raise UebenchError(
            f"{path}: {len(raw)} bytes but the IDX header {shape} needs {expected}; "
            f"the file is truncated or corrupt.{hint}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find_idx(dataset: str, root: Path | None, train: bool, candidates: tuple[str, ...],
              system_dirs: tuple[str, ...], how: str) -> tuple[Path, str]:
    """Directory holding this split's IDX pair, preferring ``.gz`` and falling back to raw files."""
    try:
        names = _split_names(train, ".gz")
        return find_files(dataset, root, candidates, names, system_dirs=system_dirs,
                          how_to_get=how), ".gz"
    except DataNotFoundError as gz_err:
        try:
            names = _split_names(train, "")
            return find_files(dataset, root, candidates, names, system_dirs=system_dirs,
                              how_to_get=how), ""
        except DataNotFoundError:
            raise DataNotFoundError(f"{gz_err}\n(The files uncompressed work too.)") from None


def load_idx_split(dataset: str, root: Path | None, train: bool, *, classes: tuple[str, ...],
                   candidates: tuple[str, ...], system_dirs: tuple[str, ...], how: str) -> ImageSet:
    """Find and read one split of an MNIST-style IDX dataset as a 1 x 28 x 28 ImageSet."""
    folder, suffix = _find_idx(dataset, root, train, candidates, system_dirs, how)
    image_name, label_name = _split_names(train, suffix)
    fix = f"Delete it and get it again: {how}."
    x = read_idx(folder / image_name, magic=IMAGES_MAGIC, fix=fix)
    y = read_idx(folder / label_name, magic=LABELS_MAGIC, fix=fix)
    if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise UebenchError(
            f"{folder}: images {x.shape} and labels {y.shape} do not match. {fix}"
        )
    if y.size and int(y.max()) >= len(classes):
        raise UebenchError(f"{folder / label_name}: label {int(y.max())} out of range. {fix}")
    return ImageSet(
        torch.from_numpy(x[:, None].copy()),  # frombuffer is read-only; torch wants a writable copy
        torch.from_numpy(y.astype(np.int64)),
        classes,
        dataset,
        {"source": f"{dataset} (IDX{suffix or ' raw'} from {folder})"},
    )


@register_dataset(
    "fashion-mnist", recipe=recipes.GREYSCALE, sizes=(60000, 10000),
    description="Fashion-MNIST (Xiao et al. 2017), 1x28x28, 10 classes, 60000/10000",
    files="train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
    "t10k-labels-idx1-ubyte.gz (or uncompressed)",
    how_to_get=_FASHION_HOW,
)
def fashion_mnist(root: Path | None, train: bool) -> ImageSet:
    return load_idx_split(
        "fashion-mnist", root, train, classes=FASHION_CLASSES,
        candidates=("fashion-mnist", "FashionMNIST/raw", "fashion_mnist", ""),
        system_dirs=("/usr/share/datasets/fashion-mnist",), how=_FASHION_HOW,
    )


@register_dataset(
    "mnist", recipe=recipes.GREYSCALE, sizes=(60000, 10000),
    description="MNIST (LeCun et al. 1998), 1x28x28, 10 classes, 60000/10000",
    files="train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
    "t10k-labels-idx1-ubyte.gz (or uncompressed)",
    how_to_get=_MNIST_HOW,
)
def mnist(root: Path | None, train: bool) -> ImageSet:
    return load_idx_split(
        "mnist", root, train, classes=MNIST_CLASSES,
        candidates=("mnist", "MNIST/raw", ""),
        system_dirs=("/usr/share/datasets/mnist",), how=_MNIST_HOW,
    )
