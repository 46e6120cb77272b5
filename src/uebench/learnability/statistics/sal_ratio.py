"""A threshold-free paired SAL statistic: the symmetric SAL ratio.

For every (epoch, layer) the run's SAL ``p`` is compared with the clean run's ``c`` at the same
epoch and layer, ``r = (p - c) / (|p| + |c|)`` (0 where both are 0), and the statistic is the mean
of ``r``. For positive SAL, ``r = tanh(ln(p / c) / 2)``: it is the log SAL ratio squashed into
[-1, 1], so it keeps the log ratio's meaning (0 = as sharp as clean, negative = flatter, i.e. less
learnable) without its failure modes: SAL is a loss difference and can be 0 or negative (the
perturbed loss below the origin), where a logarithm needs clipping whose floor then decides the
mean. No threshold (β) is involved, so it does not inherit the 2-means midpoint's jumps. Epochs
beyond the shorter run are ignored.
"""

from __future__ import annotations

import numpy as np

from uebench.learnability.statistics.base import Pair, register_statistic


def symmetric_ratio(run: np.ndarray, clean: np.ndarray) -> float:
    """Mean of ``(p - c) / (|p| + |c|)`` over matching entries (0 where both are 0)."""
    t = min(run.shape[0], clean.shape[0])
    p, c = run[:t].astype(np.float64), clean[:t].astype(np.float64)
    den = np.abs(p) + np.abs(c)
    r = np.divide(p - c, den, out=np.zeros_like(den), where=den > 0)
    return float(r.mean())


@register_statistic("sal_ratio", label="SAL ratio",
                    order=30, less="lower", reads="sal",
                    description="mean over epochs and layers of (SAL_run - SAL_clean) / "
                                "(|SAL_run| + |SAL_clean|) = tanh(log ratio / 2); 0 for clean")
def sal_ratio(pair: Pair) -> float:
    return symmetric_ratio(pair.run_sal, pair.clean_sal)
