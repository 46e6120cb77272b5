"""Executors run a grid's jobs: ``local`` (worker processes on this machine) and ``ray`` (a Ray
cluster). Both honour dependencies (a training job starts after its poison), per-job resources
and retries of jobs whose worker died; a job that raises fails, and the jobs that depend on it are
skipped, while the rest of the grid goes on. ``run(jobs, progress) -> {key: result}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from uebench.bench.graph import Job
from uebench.bench.progress import GridProgress
from uebench.registry import Registry


class Executor(Protocol):
    def run(self, jobs: Sequence[Job], progress: GridProgress) -> dict[str, dict[str, Any]]: ...


EXECUTORS: Registry[Any] = Registry("executor")


def get_executor(name: str, **options: Any) -> Executor:
    """An executor by name; ``options`` are its constructor's keyword arguments."""
    return EXECUTORS.get(name)(**options)


def error_text(exc: BaseException) -> str:
    """The last line of an error (a worker's traceback ends with the message), shortened."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}"[:300]


# the executors register themselves (ray is imported only when the ray executor runs)
from uebench.bench.executors import local as _local  # noqa: E402,F401
from uebench.bench.executors import ray as _ray  # noqa: E402,F401
