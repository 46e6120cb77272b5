"""Executors run a grid's jobs: ``local`` (worker processes on this machine) and ``ray`` (a Ray
cluster). Both honour dependencies (a training job starts after its poison), per-job resources
and retries of jobs whose worker died; a job that raises fails, and the jobs that depend on it are
skipped, while the rest of the grid goes on. ``run(jobs, progress) -> {key: result}``.
"""

from __future__ import annotations

# the executors register themselves (ray is imported only when the ray executor runs)
from uebench.bench.executors import local as _local  # noqa: F401
from uebench.bench.executors import ray as _ray  # noqa: F401
from uebench.bench.executors.base import EXECUTORS, Executor, error_text, get_executor

__all__ = ["EXECUTORS", "Executor", "error_text", "get_executor"]
