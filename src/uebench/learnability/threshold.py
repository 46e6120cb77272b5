"""The learnable threshold β (paper Eq. 4) from a clean run's per-epoch SAL values.

Exactly what the official ``analysis/get_ud.py`` computes (docs/ud.md, "Definitions, exactly as
computed"):

1. the clean run's SAL values form an (epochs × layers) matrix;
2. per epoch, ``KMeans(n_clusters=2, random_state=0, n_init="auto")`` over that epoch's layer values
   (1-D); the epoch's threshold is the midpoint (mean) of the two cluster centres;
3. β = the mean of those midpoints over all epochs.

The official code re-parsed SAL values that had been logged with ``{:8.4f}``; ``decimals=4``
(:func:`round_like_official`) reproduces that rounding before clustering and counting.

Accepted row formats (one mapping per epoch), checked in this order:

- a metrics row with a nested mapping ``{"epoch": 1, ..., "sal": {"layer1.0.conv1": 0.12, ...}}``;
- a metrics row with flat namespaced keys ``{"epoch": 1, ..., "sal/layer1.0.conv1": 0.12, ...}``;
- a plain ``{layer: sal}`` mapping (no ``epoch``/``train_loss`` key, every value a number).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from uebench.errors import UebenchError

__all__ = [
    "SalDataError",
    "as_sal_matrix",
    "epoch_sal",
    "epoch_thresholds",
    "has_sal",
    "learnable_threshold",
    "round_like_official",
    "sal_matrix",
]

# Keys that mark a mapping as a metrics row (so a row without SAL is an error, not a layer map).
_ROW_KEYS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc")


class SalDataError(UebenchError, ValueError):
    """Stored SAL values are missing, inconsistent across epochs/runs, or not finite."""


# --------------------------------------------------------------------------- SAL matrix


def round_like_official(values: Any, decimals: int = 4) -> np.ndarray:
    """Round like the official pipeline: format with ``{:.<decimals>f}`` and parse back.

    ``float(f"{v:.4f}")`` is correctly rounded from the binary value, which ``np.round`` (scale,
    round-half-even, unscale) is not in every last-digit case; the official numbers went through
    text, so this goes through text too.
    """
    arr = np.asarray(values, dtype=np.float64)
    fmt = f"{{:.{int(decimals)}f}}"
    flat = [float(fmt.format(v)) for v in arr.ravel().tolist()]
    return np.asarray(flat, dtype=np.float64).reshape(arr.shape)


def epoch_sal(row: Mapping[str, Any], *, name: str = "run", index: int = 0) -> dict[str, float]:
    """The ``{layer: sal}`` mapping of one epoch row (see the module docstring for the formats)."""
    where = f"{name}: epoch {row.get('epoch', index + 1)}"
    nested = row.get("sal")
    if isinstance(nested, Mapping):
        sal = dict(nested)
    elif any(isinstance(k, str) and k.startswith("sal/") for k in row):
        sal = {k[4:]: v for k, v in row.items() if isinstance(k, str) and k.startswith("sal/")}
    elif nested is None and any(k in row for k in _ROW_KEYS):
        raise SalDataError(
            f"{where} has no SAL values (no 'sal' mapping and no 'sal/<layer>' keys): train the "
            "run with the SAL metric enabled, or pass skip_missing=True to use only the epochs "
            "that have SAL"
        )
    elif nested is not None:
        raise SalDataError(f"{where}: 'sal' must be a mapping {{layer: value}}, got "
                           f"{type(nested).__name__}")
    else:
        sal = dict(row)
    if not sal:
        raise SalDataError(f"{where} has an empty SAL mapping")
    out: dict[str, float] = {}
    for layer, value in sal.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise SalDataError(f"{where}: SAL of layer {layer!r} is not a number: {value!r}")
        out[str(layer)] = float(value)
    return out


def has_sal(row: Mapping[str, Any]) -> bool:
    """Whether :func:`epoch_sal` would find SAL values in ``row``."""
    if isinstance(row.get("sal"), Mapping):
        return True
    if any(isinstance(k, str) and k.startswith("sal/") for k in row):
        return True
    return row.get("sal") is None and not any(k in row for k in _ROW_KEYS)


def sal_matrix(
    rows: Sequence[Mapping[str, Any]],
    layers: Sequence[str] | None = None,
    *,
    decimals: int | None = None,
    name: str = "run",
    skip_missing: bool = False,
) -> tuple[np.ndarray, list[str]]:
    """Stack per-epoch SAL values into an (epochs × layers) float64 matrix.

    Args:
        rows: one mapping per epoch, in epoch order (metrics rows or ``{layer: sal}`` maps).
        layers: the columns, in this order; ``None`` = the first epoch's layers in stored order.
            Every epoch must have exactly the first epoch's layer set; a given ``layers`` may be a
            subset of it.
        decimals: round like the official logs (``4``) before returning; ``None`` = as stored.
        name: the run's name, used in error messages.
        skip_missing: drop epochs without SAL instead of raising (e.g. SAL every k-th epoch).

    Returns:
        ``(matrix, layer_names)``.

    Raises:
        SalDataError (a ``ValueError``): no rows, an epoch without SAL, a layer set that differs
        between epochs, a requested layer that was never measured, or a non-finite value.
    """
    rows = list(rows)
    if skip_missing:
        rows = [r for r in rows if has_sal(r)]
    if not rows:
        raise SalDataError(f"{name}: no epochs with SAL values")
    per_epoch = [epoch_sal(r, name=name, index=i) for i, r in enumerate(rows)]
    first = list(per_epoch[0])
    reference = set(first)
    for i, (row, sal) in enumerate(zip(rows, per_epoch)):
        if set(sal) != reference:
            missing = sorted(reference - set(sal))
            extra = sorted(set(sal) - reference)
            raise SalDataError(
                f"{name}: epoch {row.get('epoch', i + 1)} has a different layer set from the "
                f"first epoch (missing {missing}, extra {extra}); every epoch must measure the "
                "same layers"
            )
    names = list(layers) if layers is not None else first
    unknown = [layer for layer in names if layer not in reference]
    if unknown:
        raise SalDataError(f"{name}: layers {unknown} were not measured (have {first})")
    if not names:
        raise SalDataError(f"{name}: no layers selected")
    matrix = np.array([[sal[layer] for layer in names] for sal in per_epoch], dtype=np.float64)
    bad = np.argwhere(~np.isfinite(matrix))
    if bad.size:
        e, j = bad[0]
        raise SalDataError(
            f"{name}: SAL of layer {names[j]!r} at epoch {rows[e].get('epoch', e + 1)} is "
            f"{matrix[e, j]} ({len(bad)} non-finite value(s) in all)"
        )
    if decimals is not None:
        matrix = round_like_official(matrix, decimals)
    return matrix, names


def as_sal_matrix(
    data: Any, *, decimals: int | None = None, name: str = "run"
) -> tuple[np.ndarray, list[str] | None]:
    """A 2-D array (layer names unknown, ``None``) or rows (see :func:`sal_matrix`) as a matrix."""
    if isinstance(data, np.ndarray) or (
        isinstance(data, Sequence) and data and not isinstance(data[0], Mapping)
    ):
        matrix = np.asarray(data, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[0] == 0 or matrix.shape[1] == 0:
            raise SalDataError(f"{name}: expected a non-empty epochs × layers matrix, got shape "
                               f"{matrix.shape}")
        if not np.all(np.isfinite(matrix)):
            raise SalDataError(f"{name}: the SAL matrix has non-finite values")
        if decimals is not None:
            matrix = round_like_official(matrix, decimals)
        return matrix, None
    return sal_matrix(data, decimals=decimals, name=name)


# --------------------------------------------------------------------------- threshold


def _two_means_midpoint(values: np.ndarray) -> float:
    # Degenerate epochs: a single layer, or all layers with the same value, have no second
    # cluster. sklearn would warn and return two equal centres; the midpoint is then that value,
    # so return it directly (same number, no warning).
    if values.size < 2 or np.ptp(values) == 0.0:
        return float(values[0])
    from sklearn.cluster import KMeans  # imported lazily: sklearn costs ~1 s to import

    km = KMeans(n_clusters=2, random_state=0, n_init="auto").fit(values.reshape(-1, 1))
    return float(np.mean(km.cluster_centers_))


def epoch_thresholds(matrix: Any) -> np.ndarray:
    """Per epoch, the midpoint of the two 2-means cluster centres of the layer SAL values.

    ``KMeans(n_clusters=2, random_state=0, n_init="auto")`` as the official ``get_ud.py``.
    An epoch whose values are all equal (or that has one layer) gets that value as its threshold.
    """
    m, _ = as_sal_matrix(matrix, name="clean run")
    return np.array([_two_means_midpoint(row) for row in m], dtype=np.float64)


def learnable_threshold(
    clean: Any, *, decimals: int | None = None, name: str = "clean run"
) -> float:
    """β (Eq. 4): the mean over epochs of :func:`epoch_thresholds` of the clean run.

    Args:
        clean: the clean run's per-epoch rows, or its (epochs × layers) SAL matrix.
        decimals: round like the official logs first (``4``); ``None`` = as given.
        name: used in error messages.
    """
    m, _ = as_sal_matrix(clean, decimals=decimals, name=name)
    return float(np.mean(epoch_thresholds(m)))
