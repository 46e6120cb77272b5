"""The data owner's verdict per cell of ``uebench check``: does the protection hold, and is it
*unlearnability* (few learnable layers, Ye et al., ICLR 2025, arXiv 2509.08058) or only a drop
in accuracy? Decided from 95 % intervals over seeds, never from a mean alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MIN_DROP = 0.10  # accuracy drop (fraction) that counts as "the poison bites"
MAX_UD = 1.0  # UD below which the protected model learns less than the clean model

VERDICTS = ("protected", "accuracy only", "not protected", "inconclusive")


def rule_text(min_drop: float = MIN_DROP, max_ud: float = MAX_UD) -> str:
    """The rule, as printed in every report."""
    return (
        f"**protected**: the accuracy drop's interval lies at or above {100 * min_drop:.0f} "
        f"points AND UD's interval lies below {max_ud:g} (fewer learnable layers than clean "
        f"training); **accuracy only**: the drop is at or above {100 * min_drop:.0f} points but "
        f"UD's interval lies at or above {max_ud:g} — the model keeps learning (the paper's "
        "reading of adversarial poisons such as TAP), so longer training or a defense may undo "
        f"it; **not protected**: the drop's interval lies below {100 * min_drop:.0f} points; "
        "**inconclusive**: an interval straddles a threshold (add seeds). Drop = test accuracy of "
        "the clean, undefended model − that of the model trained on the protected data (with the "
        "cell's defense), paired by seed. With one seed the interval is the value itself."
    )


def _interval(summary: Mapping[str, Any] | None) -> tuple[float, float] | None:
    if not summary or summary.get("mean") is None:
        return None
    low, high = summary.get("ci_low"), summary.get("ci_high")
    if low is None or high is None:
        return float(summary["mean"]), float(summary["mean"])
    return float(low), float(high)


def verdict(ud: Mapping[str, Any] | None, drop: Mapping[str, Any] | None, *,
            min_drop: float = MIN_DROP, max_ud: float = MAX_UD) -> str:
    """One of :data:`VERDICTS` from the summaries (``summarize`` dicts) of UD and the drop."""
    d, u = _interval(drop), _interval(ud)
    if d is None:
        return "inconclusive"
    if d[1] < min_drop:
        return "not protected"
    if d[0] < min_drop or u is None:
        return "inconclusive"
    if u[1] < max_ud:
        return "protected"
    if u[0] >= max_ud:
        return "accuracy only"
    return "inconclusive"
