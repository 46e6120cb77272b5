"""What every executor shares: the :class:`Executor` protocol, the :data:`EXECUTORS` registry the
executors register with, and :func:`get_executor`. A module of its own so that the executors
import it, not the package that imports them."""

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
