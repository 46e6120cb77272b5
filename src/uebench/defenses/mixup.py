"""MixUp: train on convex combinations of image pairs, with the labels mixed alike.

Zhang et al., "mixup: Beyond Empirical Risk Minimization", ICLR 2018, arXiv 1710.09412. APBench
preset (lafeat/apbench 9a6fb91, train.py): kornia ``RandomMixUpV2`` with default parameters on
the device batch after crop/flip, loss ``(1 - lam) CE(y) + lam CE(y_partner)``. kornia's op is
the method: partners by a random permutation of the batch, image ``(1 - lam) x + lam x_partner``,
lam ~ U(0, 1) = Beta(1, 1) (Zhang et al.'s CIFAR-10 alpha = 1). Deviation from Zhang et al.,
inherited from APBench/kornia: lam is drawn per image, not once per batch.

Placement: the lambda range is passed as a device tensor and the module moved to the device, so
kornia draws the permutation and lambdas on the device (its default draws on the CPU and copies).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from uebench.defenses.base import BatchDefense, Mixed, Targets, kornia_call, register_defense
from uebench.errors import UebenchError


@functools.lru_cache(maxsize=8)
def _mixup(device: torch.device) -> nn.Module:
    import kornia.augmentation as K  # loaded when used: `import uebench` stays light

    lam_range = torch.tensor([0.0, 1.0], device=device)  # kornia's default range, on the device
    return K.RandomMixUpV2(lambda_val=lam_range, data_keys=["input", "class"]).to(device)


def kornia_mix(
    module: Callable[[torch.device], nn.Module], x: torch.Tensor, targets: Targets, name: str,
    gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run a kornia mixing module seeded from ``gen``: (mixed x, labels y, kornia labels N x 3)."""
    if isinstance(targets, Mixed):  # mixing twice is not a defined defense
        raise UebenchError(f"{name} got already mixed labels: use one of mixup, cutmix")
    with kornia_call(gen, x.device):
        out, labels = module(x.device)(x, targets)
    return out, targets, labels.reshape(-1, 3)  # cutmix: (num_mix = 1, N, 3)


@register_defense(
    "mixup",
    kind="batch",
    paper="Zhang et al., ICLR 2018, arXiv 1710.09412",
    official_origin="eval",
    description="kornia RandomMixUpV2 (lam ~ U(0,1) per image), mixed-label cross-entropy",
)
@dataclass(frozen=True)
class MixUp(BatchDefense):
    """x float N x C x H x W in [0, 1] -> mixed batch in [0, 1] and :class:`Mixed` labels."""

    mixes = True

    def apply(
        self, x: torch.Tensor, targets: Targets, *, gen: torch.Generator
    ) -> tuple[torch.Tensor, Targets]:
        out, y, labels = kornia_mix(_mixup, x, targets, "mixup", gen)
        return out, Mixed(y, labels[:, 1].long(), labels[:, 2])  # columns: y, partner, lam

    def describe(self) -> str:
        return "mixup"
