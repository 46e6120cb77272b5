"""Learnability statistics (one registry; one small file each). Importing this package registers
every statistic; see :mod:`uebench.learnability.statistics.base` for the contract."""

from uebench.learnability.statistics import accuracy, lp_gap, probe, sal_ratio, ud, ud_bn  # noqa: F401
from uebench.learnability.statistics.base import (
    STATISTICS,
    Pair,
    StatisticInfo,
    compute_statistics,
    describe,
    register_statistic,
    statistic_info,
    statistic_names,
    statistics_of_dirs,
)

__all__ = ["STATISTICS", "Pair", "StatisticInfo", "compute_statistics", "describe",
           "register_statistic", "statistic_info", "statistic_names", "statistics_of_dirs"]
