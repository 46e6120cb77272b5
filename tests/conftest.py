"""Shared test settings: quiet progress bars, few threads (CI machines have 2 cores)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest
import torch

os.environ.setdefault("UEBENCH_NO_PROGRESS", "1")


@pytest.fixture(autouse=True)
def _deterministic_threads():
    # Two threads on a shared 2-core box thrash on tiny ops; one is faster and deterministic.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def has_dataset(name: str) -> bool:
    from uebench.data import DATASETS
    from uebench.errors import UebenchError

    if name not in DATASETS:
        return False
    try:
        DATASETS.get(name)(None, False)
    except UebenchError:
        return False
    return True


def load_benchmark(name: str) -> ModuleType:
    """A script of ``benchmarks/`` (not a package) as a module, for tests that drive it."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
