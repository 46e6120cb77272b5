"""#LP and the Unlearnable Distance (paper Eq. 5), as the official ``analysis/get_ud.py`` has them.

- λ(epoch) = the number of layers whose SAL is **strictly** greater than β;
- #LP = the mean of λ over the run's epochs (= count of (epoch, layer) entries > β / epochs);
- UD = #LP(poisoned) / #LP(clean), with β from the clean run (:mod:`.threshold`).

The clean and poisoned runs must measure the same layers (same architecture); they may have
different numbers of epochs (T^p and T^c in Eq. 5). If the clean run has no learnable layer at all
(#LP = 0), UD is undefined: :func:`unlearnable_distance` returns ``nan`` with a ``UserWarning``,
and :func:`ud_table` stores ``ud: None`` plus a message in ``warnings``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from uebench.learnability.threshold import (
    SalDataError,
    as_sal_matrix,
    epoch_thresholds,
    sal_matrix,
)

__all__ = [
    "NamedRun",
    "as_named_run",
    "checked_beta",
    "final_test_acc",
    "learnable_counts",
    "learnable_proportions",
    "num_lp",
    "ud",
    "ud_table",
    "unlearnable_distance",
]

ZERO_CLEAN_LP = "the clean run has no layer with SAL > β in any epoch (#LP = 0): UD is undefined"


def checked_beta(beta: Any, *, name: str = "beta") -> float | None:
    """A given threshold as a float, or ``None`` (the clean run's β); refuse one that is not > 0.

    SAL values are non-negative, so a threshold <= 0 (or NaN/inf) would count every layer as
    learnable (or none) and make #LP and UD meaningless.
    """
    if beta is None:
        return None
    try:
        value = float(beta)
    except (TypeError, ValueError):
        raise SalDataError(f"{name} must be a number > 0 (the SAL threshold), got {beta!r}: "
                           "pass a positive threshold, or omit it to use the clean run's "
                           "β") from None
    if not math.isfinite(value) or value <= 0:
        raise SalDataError(f"{name} must be a finite number > 0 (the SAL threshold), got "
                           f"{beta!r}: a threshold <= 0 counts every layer as learnable; pass "
                           "a positive threshold, or omit it to use the clean run's β")
    return value


def learnable_counts(matrix: Any, beta: float) -> np.ndarray:
    """λ per epoch: how many layers have SAL strictly greater than ``beta``."""
    m, _ = as_sal_matrix(matrix)
    return (m > float(beta)).sum(axis=1).astype(np.int64)


def learnable_proportions(matrix: Any, beta: float) -> np.ndarray:
    """λ per epoch divided by the number of layers (the paper's Fig. 13 "proportion")."""
    m, _ = as_sal_matrix(matrix)
    return learnable_counts(m, beta) / m.shape[1]


def num_lp(matrix: Any, beta: float) -> float:
    """#LP: the mean over epochs of :func:`learnable_counts`."""
    return float(np.mean(learnable_counts(matrix, beta)))


def _ratio(lp_poisoned: float, lp_clean: float) -> float:
    if lp_clean == 0:
        warnings.warn(ZERO_CLEAN_LP, UserWarning, stacklevel=3)
        return math.nan
    return lp_poisoned / lp_clean


def unlearnable_distance(clean: Any, poisoned: Any, beta: float | None = None) -> float:
    """UD = #LP(poisoned) / #LP(clean) from two (epochs × layers) matrices (or row lists).

    Args:
        clean: the clean run's SAL matrix or rows.
        poisoned: the poisoned run's, with the same number of layers (epochs may differ).
        beta: the learnable threshold; ``None`` = :func:`learnable_threshold` of ``clean``.

    Returns:
        UD, or ``nan`` (with a ``UserWarning``) when the clean #LP is 0.
    """
    c, c_layers = as_sal_matrix(clean, name="clean run")
    p, p_layers = as_sal_matrix(poisoned, name="poisoned run")
    if c_layers is not None and p_layers is not None:
        p = _align(p, p_layers, c_layers, "poisoned run")
    if c.shape[1] != p.shape[1]:
        raise SalDataError(f"clean and poisoned runs measure different numbers of layers "
                           f"({c.shape[1]} vs {p.shape[1]}): UD needs the same architecture")
    beta = checked_beta(beta)
    b = float(np.mean(epoch_thresholds(c))) if beta is None else beta
    return _ratio(num_lp(p, b), num_lp(c, b))


def ud(
    clean: Sequence[Mapping[str, float]],
    poisoned: Sequence[Mapping[str, float]],
    *,
    beta: float | None = None,
    decimals: int | None = None,
) -> float:
    """UD from per-epoch ``{layer: sal}`` mappings (or metrics rows): a function of stored rows.

    Poisoned layers are matched to the clean run's by name. ``decimals=4`` rounds like the
    official logs before anything else. Returns ``nan`` (with a warning) if the clean #LP is 0.
    """
    c, layers = sal_matrix(clean, decimals=decimals, name="clean run")
    p, p_layers = sal_matrix(poisoned, decimals=decimals, name="poisoned run")
    p = _align(p, p_layers, layers, "poisoned run")
    beta = checked_beta(beta)
    b = float(np.mean(epoch_thresholds(c))) if beta is None else beta
    return _ratio(num_lp(p, b), num_lp(c, b))


def _align(m: np.ndarray, have: list[str], want: list[str], name: str) -> np.ndarray:
    if set(have) != set(want):
        raise SalDataError(
            f"{name} measures different layers from the clean run (missing "
            f"{sorted(set(want) - set(have))}, extra {sorted(set(have) - set(want))}): "
            "UD needs the same architecture"
        )
    index = {layer: j for j, layer in enumerate(have)}
    return m[:, [index[layer] for layer in want]]


# --------------------------------------------------------------------------- table


@dataclass(frozen=True)
class NamedRun:
    """The parts of a run the UD table needs (``report.RunRecord`` has the same attributes)."""

    name: str
    rows: Sequence[Mapping[str, Any]]
    summary: Mapping[str, Any] | None = None


def as_named_run(run: Any) -> NamedRun:
    """Accept a ``RunRecord``/``NamedRun`` (attributes ``name``, ``rows``, optional ``summary``),
    a mapping with those keys, or a ``(name, rows)`` pair."""
    if hasattr(run, "rows") and hasattr(run, "name"):
        return NamedRun(str(run.name), list(run.rows), getattr(run, "summary", None))
    if isinstance(run, Mapping) and "rows" in run:
        return NamedRun(str(run.get("name", "run")), list(run["rows"]), run.get("summary"))
    if isinstance(run, tuple) and len(run) == 2:
        return NamedRun(str(run[0]), list(run[1]), None)
    raise TypeError(f"expected a run record, a {{'name', 'rows'}} mapping or a (name, rows) pair, "
                    f"got {type(run).__name__}")


def final_test_acc(run: NamedRun) -> float | None:
    """``summary["test_acc"]`` if present, else the last epoch row's ``test_acc``, else None."""
    if run.summary and isinstance(run.summary.get("test_acc"), (int, float)):
        return float(run.summary["test_acc"])
    for row in reversed(list(run.rows)):
        if isinstance(row.get("test_acc"), (int, float)):
            return float(row["test_acc"])
    return None


def _run_entry(run: NamedRun, m: np.ndarray, beta: float, role: str) -> dict[str, Any]:
    counts = learnable_counts(m, beta)
    return {
        "name": run.name,
        "role": role,
        "test_acc": final_test_acc(run),
        "epochs": int(m.shape[0]),
        "lp": float(np.mean(counts)),
        "ud": None,
        "learnable_per_epoch": [int(c) for c in counts],
        "proportion_per_epoch": [float(c) / m.shape[1] for c in counts],
    }


def ud_table(
    clean_run: Any,
    poisoned_runs: Sequence[Any],
    beta: float | None = None,
    decimals: int | None = None,
    *,
    skip_missing: bool = False,
) -> dict[str, Any]:
    """β, #LP and UD for a clean run and any number of poisoned runs (same architecture).

    Args:
        clean_run: the clean run (see :func:`as_named_run` for accepted forms); it sets β and
            the UD denominator. For defended runs (paper Table 2) pass the *undefended* clean run.
        poisoned_runs: runs to compare with it.
        beta: a fixed threshold instead of the clean run's Eq. 4 value.
        decimals: round SAL values like the official logs (``4``) first; ``None`` = as stored.
        skip_missing: ignore epochs without SAL (else they raise).

    Returns:
        ``{"beta", "beta_source", "decimals", "layers", "epoch_thresholds", "runs", "warnings"}``;
        ``runs[0]`` is the clean run (``ud: None``), then one entry per poisoned run with
        ``name, role, test_acc, epochs, lp, ud, learnable_per_epoch, proportion_per_epoch``.
        ``epoch_thresholds`` are the clean run's per-epoch 2-means midpoints (β's terms).
    """
    beta = checked_beta(beta)
    clean = as_named_run(clean_run)
    c, layers = sal_matrix(clean.rows, decimals=decimals, name=clean.name,
                           skip_missing=skip_missing)
    mids = epoch_thresholds(c)
    b = float(np.mean(mids)) if beta is None else beta
    table_warnings: list[str] = []
    clean_entry = _run_entry(clean, c, b, "clean")
    entries = [clean_entry]
    for raw in poisoned_runs:
        run = as_named_run(raw)
        p, p_layers = sal_matrix(run.rows, decimals=decimals, name=run.name,
                                 skip_missing=skip_missing)
        p = _align(p, p_layers, layers, run.name)
        entry = _run_entry(run, p, b, "poisoned")
        if clean_entry["lp"] > 0:
            entry["ud"] = entry["lp"] / clean_entry["lp"]
        entries.append(entry)
    if clean_entry["lp"] == 0 and poisoned_runs:
        table_warnings.append(f"{ZERO_CLEAN_LP} (clean run {clean.name!r}); ud is null")
    names = [e["name"] for e in entries]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        table_warnings.append(f"duplicate run names {duplicated}: rows are in input order")
    return {
        "beta": b,
        "beta_source": "clean" if beta is None else "given",
        "decimals": decimals,
        "layers": layers,
        "epoch_thresholds": [float(x) for x in mids],
        "runs": entries,
        "warnings": table_warnings,
    }
