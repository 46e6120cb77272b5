"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009) in every layout users have, without torchvision.

Formats, tried in this order (exact copies before re-encoded ones):

1. python pickle batches (``cifar-10-batches-py/``, ``cifar-100-python/``), read with a
   restricted unpickler: only numpy's array-reconstruction globals may be named, so a malicious
   "batch" cannot run code;
2. CIFAR-10 binary batches (``cifar-10-batches-bin/*.bin``);
3. a class-folder tree or tar(.gz) of ``train/<class>/*`` and ``test/<class>/*`` images, such as
   the shared JPEG re-encode ``cifar10_jpg.tar.gz``; decoded once, then cached as ``.npz``.

The readers of formats 1 and 2 are in :mod:`uebench.data.cifar_batches`; this module finds the
files, caches decoded image trees and registers the two datasets.

Each ImageSet records which copy it came from in ``meta['source']``, so results can say so.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from uebench.data import recipes
from uebench.data.base import ImageSet, data_roots, find_files, register_dataset
from uebench.data.cifar_batches import read_binary_batches, read_label_names, read_pickle_batches
from uebench.data.imagenet import TreeSplit, decode_tree, list_class_images, shared_data_dirs
from uebench.errors import DataNotFoundError, UebenchError

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
_CACHE_VERSION = 1  # bump whenever decoding changes, so stale caches are ignored
_C10_HOW = "uebench download cifar10 (or copy the shared cifar10_jpg.tar.gz into the data dir)"
_C100_HOW = "uebench download cifar100"

# (description, candidate sub-folders, required files, extra absolute folders) per format
Attempt = tuple[str, Sequence[str], Sequence[str], Sequence[Path]]


# --- image trees / archives, cached: decoding CIFAR-10's 60k JPEGs takes about 15 s -------------


def cache_dir() -> Path:
    """Decoded-array cache: ``$UEBENCH_CACHE`` (else ``~/.cache/uebench``) + ``/decoded``."""
    base = os.environ.get("UEBENCH_CACHE") or Path.home() / ".cache" / "uebench"
    return Path(base).expanduser() / "decoded"


def _cache_key(path: Path) -> str:
    """Changes when the archive (location, size, mtime) or any file of a folder tree changes."""
    digest = hashlib.sha256(f"v{_CACHE_VERSION}|{path.resolve()}".encode())
    if path.is_file():
        st = path.stat()
        digest.update(f"|{st.st_size}|{st.st_mtime_ns}".encode())
    else:
        for split in ("train", "test"):
            for cls, files in list_class_images(path / split).items():
                for f in files:
                    st = f.stat()
                    digest.update(f"|{split}/{cls}/{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return f"{path.name.split('.')[0]}-{digest.hexdigest()[:16]}"


def _read_cache(file: Path) -> TreeSplit | None:
    try:
        with np.load(file, allow_pickle=False) as npz:
            return npz["x"], npz["y"], tuple(str(c) for c in npz["classes"]), str(npz["source"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return None  # absent or damaged: decode again and overwrite it


def _write_cache(file: Path, split: TreeSplit) -> None:
    x, y, classes, source = split
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, x=x, y=y, classes=np.array(classes), source=np.array(source))
            os.replace(tmp, file)  # atomic: a reader sees the old cache or the whole new one
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as err:  # a read-only home must not stop training, only slow it down
        warnings.warn(f"could not write decode cache {file}: {err}", stacklevel=3)


def load_tree_split(path: Path, train: bool, *, expect: tuple[int, int] | None) -> TreeSplit:
    """One split of a train/test image tree or archive, via the cache (both splits are cached)."""
    key = _cache_key(path)
    split = "train" if train else "test"
    cached = _read_cache(cache_dir() / f"{key}-{split}.npz")
    if cached is not None:
        return cached
    decoded = decode_tree(path, expect)
    for name, arrays in decoded.items():
        _write_cache(cache_dir() / f"{key}-{name}.npz", arrays)
    return decoded[split]


# --- search and registration -------------------------------------------------------------------


def _search(dataset: str, root: Path | None, attempts: Sequence[Attempt],
            how: str) -> tuple[int, Path]:
    """``(index of the first format found, its directory)``; else one error listing every place."""
    places: dict[str, list[str]] = {}  # formats searched in the same places share one entry
    for i, (what, candidates, required, extra) in enumerate(attempts):
        try:
            return i, find_files(dataset, root, candidates, required,
                                 system_dirs=[str(d) for d in extra])
        except DataNotFoundError:
            looked = [r / c if c else r for r in data_roots(root) for c in candidates]
            where = "".join(f"\n      {p}" for p in dict.fromkeys([*looked, *extra]))
            places.setdefault(where, []).append(f"{what} ({', '.join(required)})")
    lines = [f"  - {' or '.join(whats)}; looked in:{where}" for where, whats in places.items()]
    raise DataNotFoundError(
        f"{dataset}: no copy found in any supported format.\n" + "\n".join(lines)
        + f"\nHow to get it: {how}\nThen pass --data-dir DIR (or set UEBENCH_DATA=DIR)."
    )


def _tree_attempts(dataset: str) -> list[Attempt]:
    """Folder-tree and archive layouts, searched in the data roots and in ../shared/data."""
    folders = (f"{dataset}_jpg", f"{dataset}_png", dataset)
    shared = shared_data_dirs()
    attempts: list[Attempt] = [("image folders <dir>/train/<class>/, <dir>/test/<class>/", folders,
                                ("train", "test"), [d / f for d in shared for f in folders])]
    for archive in (f"{dataset}_jpg.tar.gz", f"{dataset}_png.tar.gz", f"{dataset}.tar.gz"):
        attempts.append(("image archive", ("", dataset), (archive,), shared))
    return attempts


def _image_set(x: np.ndarray, y: np.ndarray, classes: Sequence[str], name: str,
               source: str, order: str = "original") -> ImageSet:
    if y.size and (int(y.min()) < 0 or int(y.max()) >= len(classes)):
        raise UebenchError(f"{name}: labels outside 0..{len(classes) - 1} in {source}; corrupt?")
    # order: "original" (the official batches) or "class-sorted" (an image-folder copy): train
    # indices of other tools refer to the original order
    return ImageSet(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y),
                    tuple(classes), name, {"source": f"{name} ({source})", "order": order})


def _from_tree(name: str, folder: Path, attempt: Attempt, train: bool) -> ImageSet:
    # a folder-tree attempt requires train/ + test/; an archive attempt requires the archive file
    path = folder if attempt[2][0] == "train" else folder / attempt[2][0]
    x, y, classes, source = load_tree_split(path, train, expect=(32, 32))
    return _image_set(x, y, classes, name, source, order="class-sorted")


@register_dataset(
    "cifar10", recipe=recipes.CIFAR, sizes=(50000, 10000),
    description="CIFAR-10, 3x32x32, 10 classes, 50000/10000 (python/binary batches, or image "
    "folders/archive such as the shared JPEG q75 re-encode)",
    files="cifar-10-batches-py/ | cifar-10-batches-bin/ | cifar10_jpg.tar.gz | cifar10_jpg/",
    how_to_get=_C10_HOW,
)
def cifar10(root: Path | None, train: bool) -> ImageSet:
    py_files = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    bin_files = [f + ".bin" for f in py_files]
    attempts: list[Attempt] = [
        ("python batches", ("cifar-10-batches-py", "cifar10/cifar-10-batches-py", ""),
         [*py_files, "batches.meta"], []),
        ("binary batches", ("cifar-10-batches-bin", "cifar10/cifar-10-batches-bin", ""),
         bin_files, []),
        *_tree_attempts("cifar10"),
    ]
    which, folder = _search("cifar10", root, attempts, _C10_HOW)
    if which == 0:
        x, y = read_pickle_batches([folder / f for f in py_files], "labels")
        names = read_label_names(folder / "batches.meta", "label_names")
        return _image_set(x, y, names, "cifar10", f"python batches {folder}")
    if which == 1:
        x, y = read_binary_batches([folder / f for f in bin_files])
        return _image_set(x, y, CIFAR10_CLASSES, "cifar10", f"binary batches {folder}")
    return _from_tree("cifar10", folder, attempts[which], train)


@register_dataset(
    "cifar100", recipe=recipes.CIFAR, sizes=(50000, 10000),
    description="CIFAR-100, 3x32x32, 100 fine classes, 50000/10000 (python batches or image "
    "folders/archive)",
    files="cifar-100-python/{train,test,meta} | cifar100_jpg.tar.gz | cifar100_jpg/",
    how_to_get=_C100_HOW,
)
def cifar100(root: Path | None, train: bool) -> ImageSet:
    split = "train" if train else "test"
    attempts: list[Attempt] = [
        ("python batches", ("cifar-100-python", "cifar100/cifar-100-python", ""),
         [split, "meta"], []),
        *_tree_attempts("cifar100"),
    ]
    which, folder = _search("cifar100", root, attempts, _C100_HOW)
    if which == 0:
        x, y = read_pickle_batches([folder / split], "fine_labels")
        names = read_label_names(folder / "meta", "fine_label_names")
        return _image_set(x, y, names, "cifar100", f"python batches {folder}")
    return _from_tree("cifar100", folder, attempts[which], train)
