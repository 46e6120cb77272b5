"""Gaussian blur of every training image (APBench's ``gaussian`` defense).

APBench preset (Qin et al., arXiv 2308.03258; lafeat/apbench 9a6fb91, util.py): torchvision
``GaussianBlur(3, sigma=0.1)`` on the PIL image before crop/flip: a 3 x 3 kernel
``exp(-d^2 / (2 sigma^2))`` (normalised), reflect padding, float arithmetic, rounded back to
uint8. kornia's ``filters.gaussian_blur2d`` with ``border_type="reflect"`` computes the same
kernel and convolution, so it is used. At sigma 0.1 the off-centre weights are e^-50 ~ 2e-22:
the APBench preset leaves every uint8 image unchanged (a test checks it); raise ``sigma`` for
a blur that does something.
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
from uebench.errors import ConfigError


@register_defense(
    "blur",
    kind="dataset",
    paper="APBench, Qin et al., arXiv 2308.03258 (gaussian)",
    official_origin="running",
    description="Gaussian blur, kernel 3, sigma 0.1 (APBench; a no-op on uint8), once",
)
@dataclass(frozen=True)
class GaussianBlur(DatasetDefense):
    """uint8 N x C x H x W -> uint8: blurred with an odd ``kernel`` and ``sigma`` > 0, rounded."""

    kernel: int = 3
    sigma: float = 0.1

    def __post_init__(self) -> None:
        check_range("blur.kernel", self.kernel, 1)
        if self.kernel % 2 == 0:
            raise ConfigError(f"blur.kernel must be odd, got {self.kernel}")
        if self.sigma <= 0:
            raise ConfigError(f"blur.sigma must be > 0, got {self.sigma}")

    def prepare(self, x: torch.Tensor, y: torch.Tensor, *, seed: int) -> torch.Tensor:
        check_images(x, dtype=torch.uint8, what="blur")
        return map_chunks(x, self._blur)

    def _blur(self, x: torch.Tensor) -> torch.Tensor:
        import kornia  # loaded when used: `import uebench` stays light

        size, sigma = (self.kernel, self.kernel), (self.sigma, self.sigma)
        out = kornia.filters.gaussian_blur2d(x.float(), size, sigma, border_type="reflect")
        return out.round_().clamp_(0, 255).to(torch.uint8)

    def describe(self) -> str:
        return f"blur(k={self.kernel},s={self.sigma:g})"
