"""CutMix: paste a random box from a partner image; labels mixed by the pasted area.

Yun et al., "CutMix: Regularization Strategy to Train Strong Classifiers with Localizable
Features", ICCV 2019, arXiv 1905.04899. APBench preset (lafeat/apbench 9a6fb91, train.py): kornia
``RandomCutMixV2`` with default parameters on the device batch after crop/flip, mixed-label CE.
kornia's op: partners by a random permutation, lam ~ Beta(1, 1) (Yun et al.'s CIFAR beta = 1) per
image, box sides ``floor(sqrt(1 - lam) * H)`` x ``floor(sqrt(1 - lam) * W)``, label weights from
the box's exact area (as Yun et al.). Deviation from Yun et al., inherited from APBench/kornia:
the box lies wholly inside the image instead of being centred uniformly and clipped.

kornia's label convention changed (``use_correct_lambda``); we pass ``True`` (third label column
= the *original* image's share) and convert to :class:`Mixed` (the partner's share); a test checks
that the partner's share equals the fraction of pasted pixels. Parameters are drawn on the
device (beta and cut-size ranges given as device tensors, module moved to the device).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import nn

from uebench.defenses.base import BatchDefense, Mixed, Targets, register_defense
from uebench.defenses.mixup import kornia_mix


@functools.lru_cache(maxsize=8)
def _cutmix(device: torch.device) -> nn.Module:
    import kornia.augmentation as K  # loaded when used: `import uebench` stays light

    beta = torch.tensor(1.0, device=device)  # kornia's defaults, as device tensors
    cut_size = torch.tensor([0.0, 1.0], device=device)
    module = K.RandomCutMixV2(
        beta=beta, cut_size=cut_size, data_keys=["input", "class"], use_correct_lambda=True
    )
    return module.to(device)


@register_defense(
    "cutmix",
    kind="batch",
    paper="Yun et al., ICCV 2019, arXiv 1905.04899",
    official_origin="eval",
    description="kornia RandomCutMixV2 (lam ~ Beta(1,1), box inside the image), mixed-label CE",
)
@dataclass(frozen=True)
class CutMix(BatchDefense):
    """x float N x C x H x W in [0, 1] -> pasted batch in [0, 1] and :class:`Mixed` labels."""

    mixes = True

    def apply(
        self, x: torch.Tensor, targets: Targets, *, gen: torch.Generator
    ) -> tuple[torch.Tensor, Targets]:
        out, y, labels = kornia_mix(_cutmix, x, targets, "cutmix", gen)
        # columns: y, partner, the original image's share (use_correct_lambda=True)
        return out, Mixed(y, labels[:, 1].long(), 1 - labels[:, 2])

    def describe(self) -> str:
        return "cutmix"
