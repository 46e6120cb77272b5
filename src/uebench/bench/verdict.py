"""The data owner's verdict per cell of ``uebench check``, read against the random-noise control.

Two questions, each answered from a 95 % interval over seeds, never from a mean alone:

1. *Does the protection bite?* The test-accuracy drop against the clean, undefended model,
   paired by seed, must lie at or above ``min_drop`` (10 points by default).
2. *Is it more than noise?* The headline statistic (:data:`HEADLINE`, chosen by the validation
   study in docs/findings.md §10 as the statistic that separates working poisons from random
   noise at the budget without flagging one noise draw against another) of the protected data,
   minus that of the random-noise control at the same budget, paired by seed, must lie on the
   less-learnable side of 0.

The paper's UD is reported beside the verdict but does not decide it: at every scale we can run
it does not tell a working poison from random noise (docs/findings.md §1, §5, §10).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MIN_DROP = 0.10  # accuracy drop (fraction) that counts as "the poison bites"
HEADLINE = "acc"  # the statistic the verdict reads against the control (findings §10)

VERDICTS = ("protected", "accuracy only", "not protected", "inconclusive")


def rule_text(min_drop: float = MIN_DROP, headline: str = HEADLINE) -> str:
    """The rule, as printed in every report."""
    return (
        f"**protected**: the test-accuracy drop's 95 % interval lies at or above "
        f"{100 * min_drop:.0f} points AND the paired difference of `{headline}` from the "
        "random-noise control at the same budget lies entirely on the less-learnable side of 0; "
        f"**accuracy only**: the drop holds but `{headline}` is separated from the control on "
        "the *more*-learnable side (the data still teaches what noise does not take away); "
        f"**not protected**: the drop's interval lies below {100 * min_drop:.0f} points; "
        "**inconclusive**: an interval straddles its threshold, or there is no control or only "
        "one seed (add seeds). Drop = test accuracy of the clean, undefended model − that of "
        "the model trained on the protected data (with the cell's defense), paired by seed. "
        f"Why `{headline}`: docs/findings.md §10 (the validation study); every statistic and "
        "its paired difference are in the tables below."
    )


def _interval(summary: Mapping[str, Any] | None) -> tuple[float, float] | None:
    if not summary or summary.get("mean") is None:
        return None
    low, high = summary.get("ci_low"), summary.get("ci_high")
    if low is None or high is None:
        return float(summary["mean"]), float(summary["mean"])
    return float(low), float(high)


def verdict(drop: Mapping[str, Any] | None, headline: Mapping[str, Any] | None, *,
            min_drop: float = MIN_DROP) -> str:
    """One of :data:`VERDICTS` from the drop's summary (``summarize`` dict) and the headline
    statistic's paired difference from the control (``paired_difference`` dict)."""
    d = _interval(drop)
    if d is None:
        return "inconclusive"
    if d[1] < min_drop:
        return "not protected"
    if d[0] < min_drop or not headline or headline.get("separated") is None:
        return "inconclusive"
    if headline["separated"]:
        return "protected"
    if headline.get("direction") == "more" and _interval(headline) is not None:
        low, high = _interval(headline)  # type: ignore[misc]
        if low > 0 or high < 0:  # separated, on the more-learnable side
            return "accuracy only"
    return "inconclusive"
