"""Runtime: where and how to compute (device, seed, progress bars, precision)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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
