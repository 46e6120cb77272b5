"""Learnable-layer curve statistics: the signed area between the run's and the clean run's
learnable-layer curves (layers with SAL > β per epoch, β from the clean run), as a fraction of
the layers.

``lp_gap`` averages over all epochs: it is (#LP(run) - #LP(clean)) / layers, UD's difference form,
defined when the clean #LP is 0 and not inflated by a small denominator. ``lp_gap_late`` averages
over the second half of training only: findings §1 and §5 show that the first epochs (the model far
from any minimum, BatchNorm statistics lagging the weights) give most learnable layers in every
run, poisoned or not, so the late half asks whether the run *keeps* learning. Epochs beyond the
shorter run are ignored.
"""

from __future__ import annotations

import numpy as np

from uebench.learnability.distance import learnable_counts
from uebench.learnability.statistics.base import Pair, register_statistic


def curve_gap(pair: Pair, *, late: bool) -> float:
    t = min(pair.run_sal.shape[0], pair.clean_sal.shape[0])
    gap = (learnable_counts(pair.run_sal[:t], pair.beta)
           - learnable_counts(pair.clean_sal[:t], pair.beta)) / len(pair.layers)
    return float(np.mean(gap[t // 2:] if late else gap))


@register_statistic("lp_gap", label="#LP gap",
                    order=40, less="lower", reads="sal",
                    description="mean over epochs of (learnable layers of the run - of the clean "
                                "run) / layers; 0 for clean")
def lp_gap(pair: Pair) -> float:
    return curve_gap(pair, late=False)


@register_statistic("lp_gap_late", label="#LP gap, late half",
                    order=41, less="lower", reads="sal",
                    description="lp_gap over the second half of the epochs only (past the "
                                "early-training BatchNorm lag)")
def lp_gap_late(pair: Pair) -> float:
    return curve_gap(pair, late=True)
