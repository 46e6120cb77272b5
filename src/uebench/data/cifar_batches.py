"""Readers of the original CIFAR files: the python pickle batches, through an unpickler that
cannot run code, and the CIFAR-10 binary batches.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from uebench.errors import UebenchError

__all__ = [
    "RestrictedUnpickler", "UnsafePickleError", "load_pickle", "read_binary_batches",
    "read_label_names", "read_pickle_batches",
]

_PIXELS = 3 * 32 * 32


class UnsafePickleError(UebenchError):
    """A pickle names a global outside the allow-list (possibly a malicious file)."""


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    # Python 3 writes bytes in protocol-2 pickles as _codecs.encode(text, 'latin1'); allow only that
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"refusing _codecs.encode({type(text).__name__}, {encoding!r})")
    return text.encode("latin-1")


_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):  # numpy 1.x / 2.x names
    _ALLOWED[(_module, "_reconstruct")] = np.zeros(1).__reduce__()[0]
    _ALLOWED[(_module, "scalar")] = np.int64(0).__reduce__()[0]


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy array/dtype/scalar reconstruction globals.

    Plain containers (dict, list, bytes, str, int) need no globals at all; anything else,
    ``os.system`` or ``builtins.eval`` included, raises :class:`UnsafePickleError`.
    """

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to unpickle global {module}.{name}: CIFAR batches only hold numpy "
                "arrays, lists and strings (the file may be malicious)"
            ) from None


def load_pickle(path: Path) -> Any:
    """Safely unpickle a CIFAR python batch (``encoding='bytes'``, like the Python 2 originals)."""
    try:
        with open(path, "rb") as fh:
            return RestrictedUnpickler(fh, encoding="bytes").load()
    except UnsafePickleError as err:
        raise UnsafePickleError(f"{path}: {err}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError,
            AttributeError, OSError, UebenchError) as err:
        msg = f"{path}: not a readable CIFAR pickle ({err!r}); download it again."
        raise UebenchError(msg) from None


def _field(batch: Any, key: str, path: Path) -> Any:
    # encoding='bytes' turns the Python 2 str keys into bytes; re-pickled copies may use str
    if isinstance(batch, dict):
        for k in (key.encode(), key):
            if k in batch:
                return batch[k]
    raise UebenchError(f"{path}: no '{key}' entry; not a CIFAR python batch.")


def read_label_names(path: Path, key: str) -> tuple[str, ...]:
    """The class names stored under ``key`` in a CIFAR ``batches.meta`` / ``meta`` pickle."""
    values = _field(load_pickle(path), key, path)
    return tuple(v.decode() if isinstance(v, bytes) else str(v) for v in values)


def read_pickle_batches(paths: Sequence[Path], label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N x 3 x 32 x 32 uint8) and labels of python batches (rows: R, G, B planes)."""
    xs, ys = [], []
    for path in paths:
        batch = load_pickle(path)
        data = np.asarray(_field(batch, "data", path))
        labels = np.asarray(_field(batch, label_key, path), dtype=np.int64)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _PIXELS:
            raise UebenchError(f"{path}: data is {data.dtype} {data.shape}, not uint8 N x 3072.")
        if labels.shape != (data.shape[0],):
            raise UebenchError(f"{path}: {labels.shape[0]} labels for {data.shape[0]} images.")
        xs.append(data.reshape(-1, 3, 32, 32))
        ys.append(labels)
    return np.concatenate(xs), np.concatenate(ys)


def read_binary_batches(paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 binary batches: records of 1 label byte + 3,072 pixel bytes (R, G, B planes)."""
    xs, ys = [], []
    for path in paths:
        raw = np.fromfile(path, dtype=np.uint8)
        if raw.size == 0 or raw.size % (_PIXELS + 1):
            raise UebenchError(
                f"{path}: {raw.size} bytes is not a whole number of 3,073-byte records; "
                "the file is truncated or corrupt. Re-download it."
            )
        records = raw.reshape(-1, _PIXELS + 1)
        xs.append(records[:, 1:].reshape(-1, 3, 32, 32))
        ys.append(records[:, 0].astype(np.int64))
    return np.concatenate(xs), np.concatenate(ys)

