"""Shared test settings: quiet progress bars, few threads (CI machines have 2 cores)."""

from __future__ import annotations

import importlib.util
import os
import sys
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
    """A script of ``benchmarks/`` (not a package) as a module, for tests that drive it. Its
    folder is on ``sys.path`` while it loads, as when it runs as a script (siblings import)."""
    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    spec = importlib.util.spec_from_file_location(f"benchmarks.{name}", folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    sys.path.insert(0, str(folder))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    return module
