"""The paper's Unlearnable Distance (Eq. 5), exactly as :mod:`uebench.learnability.distance`."""

from __future__ import annotations

from uebench.learnability.distance import num_lp
from uebench.learnability.statistics.base import Pair, register_statistic


def ud_of(pair: Pair) -> float | None:
    """#LP(run) / #LP(clean) with the clean run's β; ``None`` when the clean #LP is 0."""
    clean = num_lp(pair.clean_sal, pair.beta)
    return None if clean == 0 else num_lp(pair.run_sal, pair.beta) / clean


@register_statistic("ud", label="UD",
                    order=10, less="lower", reads="sal",
                    description="the paper's UD: #LP(run) / #LP(clean), beta from the clean run "
                                "(1 for the clean run)")
def ud(pair: Pair) -> float | None:
    return ud_of(pair)
