"""Runtime: where and how to compute (device, seed, progress bars, precision)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch

from uebench.errors import TimeBudgetReached, UebenchError


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(name: str | torch.device | None) -> torch.device:
    """``auto``/None -> CUDA if available else CPU; a named device is checked before any work."""
    if name is None or name == "auto":
        return default_device()
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise UebenchError(f"unknown device {name!r}: use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UebenchError(f"device {name} requested but CUDA is not available on this "
                               "machine; use --device cpu (or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UebenchError(f"device {name} does not exist: this machine has "
                               f"{torch.cuda.device_count()} CUDA device(s)")
    elif device.type != "cpu":
        raise UebenchError(f"device {name} is not supported: use cpu, cuda, cuda:N or auto")
    return device


def autocast(device: torch.device, precision: str) -> Any:
    """The autocast context of a precision: bf16 autocast on ``device``, else none."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


@dataclass
class Runtime:
    """Device, master seed and progress switch handed to every long-running component.

    Random draws are made on CPU generators derived from ``seed`` and moved to the device, so
    results do not depend on the device's RNG and are reproducible on CPU.
    """

    device: torch.device = field(default_factory=default_device)
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        self.device = torch.device(self.device)

    def generator(self, *offsets: int) -> torch.Generator:
        """A fresh CPU generator seeded from ``seed`` and the given stream offsets."""
        return torch.Generator().manual_seed(derive_seed(self.seed, *offsets))

    @property
    def show_progress(self) -> bool:
        return self.progress and os.environ.get("UEBENCH_NO_PROGRESS", "") == ""


def derive_seed(seed: int, *offsets: int) -> int:
    """Deterministically mix a seed with stream offsets (so streams do not overlap)."""
    value = seed & 0xFFFFFFFF
    for off in offsets:
        value = (value * 1_000_003 + (off & 0xFFFFFFFF) + 0x9E3779B9) % (2**63 - 1)
    return int(value)


# The end of the current time budget (a time.monotonic() value), None = no budget. Process-wide
# on purpose: a budget bounds everything a script does, however deep the call that trains.
_DEADLINE: list[float | None] = [None]


@contextmanager
def time_budget(seconds: float | None) -> Iterator[None]:
    """Inside the block, long loops (``fit``'s epochs) stop at a resumable point, raising
    :class:`~uebench.errors.TimeBudgetReached`, when their next unit of work would end more than
    ``seconds`` from now. ``None`` = no budget. Nested budgets keep the earlier end."""
    old = _DEADLINE[0]
    if seconds is not None:
        end = time.monotonic() + float(seconds)
        _DEADLINE[0] = end if old is None else min(old, end)
    try:
        yield
    finally:
        _DEADLINE[0] = old


def seconds_left() -> float | None:
    """Seconds until the current budget ends (negative once past it); None without a budget."""
    end = _DEADLINE[0]
    return None if end is None else end - time.monotonic()


def check_budget(next_seconds: float, what: str) -> None:
    """Raise :class:`TimeBudgetReached` if work expected to take ``next_seconds`` would end past
    the current budget (``what`` names the point reached, for the message)."""
    left = seconds_left()
    if left is not None and next_seconds > left:
        raise TimeBudgetReached(
            f"time budget reached after {what} (the next step needs about {next_seconds:.0f} s, "
            f"{max(left, 0.0):.0f} s left); what finished is stored: rerun to resume")
