"""Uncertainty of per-seed numbers (UD, #LP, accuracy): mean, standard deviation, 95 % intervals.

With the handful of seeds a CPU or a GPU budget allows (3-5), the default interval is Student's t
(exact for normal per-seed values, honest about few seeds: with 3 seeds the half-width is 2.48
standard deviations); the percentile bootstrap is offered for larger samples, where it needs no
normality (with 3 values it can only ever return the smallest and largest).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

Method = Literal["t", "bootstrap"]


def summarize(values: Sequence[float | None], *, level: float = 0.95, method: Method = "t",
              resamples: int = 10_000, seed: int = 0) -> dict[str, float | int | None]:
    """``{"n", "mean", "std", "ci_low", "ci_high", "method"}`` of the finite ``values``.

    ``std`` is the sample standard deviation (ddof 1); with one value it and the interval are
    ``None``. ``method`` ``"t"``: mean ± t_{(1+level)/2, n-1} · std/√n; ``"bootstrap"``: the
    percentile interval of the mean over ``resamples`` seeded resamples.
    """
    x = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    out: dict[str, float | int | None] = {"n": int(x.size), "mean": None, "std": None,
                                          "ci_low": None, "ci_high": None, "method": method}
    if x.size == 0:
        return out
    out["mean"] = float(x.mean())
    if x.size < 2:
        return out
    std = float(x.std(ddof=1))
    out["std"] = std
    if method == "t":
        from scipy import stats

        half = float(stats.t.ppf((1 + level) / 2, x.size - 1)) * std / math.sqrt(x.size)
        out["ci_low"], out["ci_high"] = out["mean"] - half, out["mean"] + half
    else:
        rng = np.random.default_rng(seed)
        means = rng.choice(x, size=(resamples, x.size), replace=True).mean(axis=1)
        lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
        out["ci_low"], out["ci_high"] = float(lo), float(hi)
    return out


def format_summary(s: dict[str, float | int | None], digits: int = 3, scale: float = 1.0) -> str:
    """``"0.412 ± 0.051 [0.285, 0.539]"`` (mean ± std [95 % CI]); ``"-"`` without values."""
    if s["mean"] is None:
        return "-"
    fmt = f"{{:.{digits}f}}"
    text = fmt.format(float(s["mean"]) * scale)
    if s["std"] is not None:
        text += " ± " + fmt.format(float(s["std"]) * scale)
    if s["ci_low"] is not None and s["ci_high"] is not None:
        text += (f" [{fmt.format(float(s['ci_low']) * scale)}, "
                 f"{fmt.format(float(s['ci_high']) * scale)}]")
    return text
