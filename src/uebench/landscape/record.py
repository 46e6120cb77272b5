"""Train one run with its trajectory recorded: ``train_run`` with ``trajectory.enabled`` (a run
directory as ``uebench train`` writes it, plus ``trajectory/``). Resuming and reuse behave as for
every run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from uebench.config import RunCfg, TrajectoryCfg
from uebench.data.base import Splits
from uebench.train.run import train_run


def record_run(
    cfg: RunCfg,
    out: Path | str,
    *,
    every: int | None = None,
    layers: Sequence[str] | None = None,
    dtype: str = "float32",
    memory_mb: float = 256.0,
    splits: Splits | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train ``cfg`` into ``out`` recording the parameter path; returns the run summary.

    Args:
        cfg: the run's settings (as for ``uebench train``).
        out: the run directory; an interrupted run resumes, a complete one is reused.
        every: snapshot interval in optimiser steps; default about 150 snapshots per run.
        layers: module-path prefixes to record (all parameters if None).
        dtype: storage dtype of the snapshots.
        memory_mb: snapshot buffer size before a chunk is written.
        splits: the dataset splits, if already loaded.
        progress: show progress bars.
    """
    if memory_mb != 256.0:
        raise ValueError("memory_mb is fixed at 256 MB for recorded runs")
    traj = TrajectoryCfg(enabled=True, every=every, layers=tuple(layers or ()), dtype=dtype)
    return train_run(dataclasses.replace(cfg, trajectory=traj), out, splits=splits,
                     progress=progress)
