"""UD with SAL re-measured after BatchNorm statistics are re-estimated for every epoch's weights.

docs/findings.md §5 shows that early-epoch SAL is mostly BatchNorm lag: the running statistics
trail the weights, so a perturbation that moves the weights is measured against stale statistics.
Re-estimating them (one train-mode pass over the run's training data, weights untouched;
:func:`uebench.learnability.posthoc.recalibrate_batchnorm`) removes that part. The values come
from the post-hoc measurement tagged :data:`BN_TAG` (``uebench sal RUN --tag bn --recalibrate-bn``
or ``uebench evaluate --recalibrate-bn``); a run without it gives ``None``.
"""

from __future__ import annotations

from pathlib import Path

from uebench.learnability.statistics.base import Pair, register_statistic
from uebench.learnability.statistics.ud import ud_of
from uebench.train.rundir import RunError
from uebench.train.sal_tags import read_tag_settings

BN_TAG = "bn"


def _recalibrated(run_dir: Path | None) -> bool:
    """Whether the run's ``bn`` tag was measured with ``recalibrate_bn`` (not another setting
    someone happened to tag ``bn``)."""
    if run_dir is None:
        return False
    try:
        settings = read_tag_settings(run_dir, BN_TAG)
    except (OSError, RunError):
        return False
    return settings is not None and settings.get("recalibrate_bn") is True


@register_statistic("ud_bn", label="UD (BN recalibrated)",
                    order=20, less="lower", reads=f"sal:{BN_TAG}",
                    description="the paper's UD with SAL measured after BatchNorm statistics are "
                                "re-estimated for each epoch's weights")
def ud_bn(pair: Pair) -> float | None:
    if not (_recalibrated(pair.clean.path) and _recalibrated(pair.run.path)):
        return None
    tagged = pair.tagged(BN_TAG)
    return None if tagged is None else ud_of(tagged)
