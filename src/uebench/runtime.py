"""Runtime: where and how to compute (device, seed, progress bars, precision)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(name: str | torch.device | None) -> torch.device:
    """``auto``/None -> CUDA if available else CPU; a named device is checked before any work."""
    from uebench.errors import UebenchError

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
