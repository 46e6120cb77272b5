"""CutOut: erase one square patch of every training image.

DeVries & Taylor, "Improved Regularization of Convolutional Neural Networks with Cutout",
arXiv 1708.04552. APBench preset (lafeat/apbench 9a6fb91, util.py ``Cutout(16)``, after crop, flip
and ToTensor): the centre (cy, cx) is uniform over all pixels, the box is
[cy - 8, cy + 8) x [cx - 8, cx + 8) clipped to the image (so boxes at the border are smaller),
and the pixels inside are set to 0 in every channel. kornia's ``RandomErasing`` samples an
area/aspect-ratio box that always lies inside the image and fills it with a value, a different
distribution, so the box is drawn here: batched, on the device, from a device generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from uebench.defenses.base import (
    BatchDefense,
    Targets,
    check_range,
    device_generator,
    register_defense,
)


def cutout_mask(
    n: int, h: int, w: int, size: int, gen: torch.Generator, device: torch.device
) -> torch.Tensor:
    """Float N x 1 x H x W mask: 0 inside each image's box, 1 elsewhere (DeVries & Taylor)."""
    cy = torch.randint(0, h, (n, 1, 1), generator=gen, device=device)
    cx = torch.randint(0, w, (n, 1, 1), generator=gen, device=device)
    rows = torch.arange(h, device=device)[None, :, None]
    cols = torch.arange(w, device=device)[None, None, :]
    half = size // 2
    inside_rows = (rows >= cy - half) & (rows < cy + half)
    inside_cols = (cols >= cx - half) & (cols < cx + half)
    return (~(inside_rows & inside_cols)).to(torch.float32)[:, None]


@register_defense(
    "cutout",
    kind="batch",
    paper="DeVries & Taylor, arXiv 1708.04552",
    official_origin="running",
    description="zero one 16 x 16 box per image (centre uniform, clipped at the border)",
)
@dataclass(frozen=True)
class Cutout(BatchDefense):
    """x float N x C x H x W in [0, 1] -> same, one ``size`` x ``size`` box zeroed per image."""

    size: int = 16

    def __post_init__(self) -> None:
        check_range("cutout.size", self.size, 1)

    def apply(
        self, x: torch.Tensor, targets: Targets, *, gen: torch.Generator
    ) -> tuple[torch.Tensor, Targets]:
        n, _, h, w = x.shape
        mask = cutout_mask(n, h, w, self.size, device_generator(gen, x.device), x.device)
        return x * mask.to(x.dtype), targets

    def describe(self) -> str:
        return f"cutout({self.size})"
