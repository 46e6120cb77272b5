"""Grayscale: each RGB training image replaced by its luma, replicated to 3 channels.

Part of ISS (Liu et al., "Image Shortcut Squeezing", ICML 2023, arXiv 2301.13838); APBench preset
(lafeat/apbench 9a6fb91, util.py): torchvision ``Grayscale(3)`` on the PIL image before crop/flip,
i.e. PIL ``convert("L")``: L = (19595 R + 38470 G + 7471 B + 2**15) >> 16, the ITU-R 601-2 luma
in 16-bit fixed point, rounded. We compute exactly that on uint8 tensors (tested equal to PIL).
kornia's ``rgb_to_grayscale`` has the same weights in floating point; rounding it differs from
PIL on about 0.05 % of pixels, so it is not used.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from uebench.defenses.base import DatasetDefense, check_images, map_chunks, register_defense
from uebench.errors import UebenchError

# PIL's fixed-point luma weights (libImaging/Convert.c, L24): 0.299, 0.587, 0.114 times 2**16
LUMA = (19595, 38470, 7471)


def luma(x: torch.Tensor) -> torch.Tensor:
    """PIL's ``convert("L")`` of uint8 RGB images N x 3 x H x W -> uint8 N x 1 x H x W."""
    rgb = x.to(torch.int32)
    weighted = rgb[:, 0] * LUMA[0] + rgb[:, 1] * LUMA[1] + rgb[:, 2] * LUMA[2]
    return ((weighted + (1 << 15)) >> 16).to(torch.uint8)[:, None]


@register_defense(
    "grayscale",
    kind="dataset",
    paper="Liu et al., ICML 2023, arXiv 2301.13838 (ISS); APBench arXiv 2308.03258",
    official_origin="running",
    description="RGB -> 3-channel luma (PIL convert('L')), once; 1-channel data is unchanged",
)
@dataclass(frozen=True)
class Grayscale(DatasetDefense):
    """uint8 N x 3 x H x W -> uint8 N x 3 x H x W with three equal channels (PIL's luma).

    Single-channel data is already gray and returned unchanged; other channel counts raise.
    """

    def prepare(self, x: torch.Tensor, y: torch.Tensor, *, seed: int) -> torch.Tensor:
        check_images(x, dtype=torch.uint8, what="grayscale")
        if x.shape[1] == 1:
            return x.clone()
        if x.shape[1] != 3:
            raise UebenchError(f"grayscale needs 1- or 3-channel images, got {x.shape[1]}")
        return map_chunks(x, lambda part: luma(part).expand(-1, 3, -1, -1).contiguous())

    def describe(self) -> str:
        return "grayscale"
