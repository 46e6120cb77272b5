"""Bit-depth reduction (BDR): keep the top ``bits`` bits of every 8-bit pixel value.

Part of ISS (Liu et al., "Image Shortcut Squeezing", ICML 2023, arXiv 2301.13838); originally a
feature-squeezing defense (Xu et al., NDSS 2018, arXiv 1704.01155). APBench preset (lafeat/apbench
9a6fb91, util.py): torchvision ``RandomPosterize(bits=2, p=1)`` on the PIL image before crop/flip,
i.e. ``v & (0xFF << (8 - bits))``. kornia's ``enhance.posterize`` on ``v / 255`` gives exactly
that (tested equal to PIL ``ImageOps.posterize``), so it is used.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from uebench.defenses.base import (
    DatasetDefense,
    check_images,
    check_range,
    map_chunks,
    register_defense,
)


@register_defense(
    "bdr",
    kind="dataset",
    paper="Liu et al., ICML 2023, arXiv 2301.13838 (ISS); APBench arXiv 2308.03258",
    official_origin="running",
    description="posterize every training image to 2 bits per channel value, once",
)
@dataclass(frozen=True)
class BitDepthReduction(DatasetDefense):
    """uint8 N x C x H x W -> uint8 with each value's low ``8 - bits`` bits cleared (bits 1..8)."""

    bits: int = 2

    def __post_init__(self) -> None:
        check_range("bdr.bits", self.bits, 1, 8)

    def prepare(self, x: torch.Tensor, y: torch.Tensor, *, seed: int) -> torch.Tensor:
        check_images(x, dtype=torch.uint8, what="bdr")
        return map_chunks(x, self._posterize)

    def _posterize(self, x: torch.Tensor) -> torch.Tensor:
        import kornia  # loaded when used: `import uebench` stays light

        out = kornia.enhance.posterize(x.float().div(255), self.bits)
        return out.mul(255).round_().to(torch.uint8)

    def describe(self) -> str:
        return f"bdr({self.bits}bit)"
