"""UEraser: adversarial augmentations that suppress unlearnable examples.

Qin et al., "Learning the Unlearnable: Adversarial Augmentations Suppress Unlearnable Example
Attacks", arXiv 2303.15127 (lafeat/ueraser 6076a27); APBench preset (lafeat/apbench 9a6fb91,
defense/ueraser.py, train.py), the paper-parity one. On the device batch after crop/flip:

1. augmentation U = kornia ``RandomPlasmaBrightness`` (roughness 0.3-0.7, intensity 0.5-1.0,
   p = ``plasma_p``) -> ``RandomPlasmaContrast`` (roughness 0.3-0.7, p = ``plasma_p``) ->
   ``RandomChannelShuffle`` (p 0.5) -> ``auto.TrivialAugment()``: APBench's own kornia pipeline,
   used as is. Inherited from kornia: TrivialAugment picks one operation per call for the whole
   batch (magnitudes per image), where Mueller & Hutter (arXiv 2103.10158) pick one per image.
2. for the first ``repeat_epoch`` epochs (1-based ``epoch <= repeat_epoch``, APBench's 0-based
   ``epoch < repeat_epoch``): ``repeats`` = 5 independent draws U(x), one train-mode forward each,
   loss = batch mean of the per-image *max* of the 5 cross-entropies; afterwards one draw and
   plain CE. Variants: ``ueraser-lite`` (repeat_epoch 0), ``ueraser`` (50), ``ueraser-max``
   (every epoch; APBench's 300 > 200 epochs; the paper's Table 2).
3. ``jpeg=true``: APBench's ``UEraser_jpeg``, which APBench uses for TAP and AR poisons: each
   draw first compresses the batch with PIL at a quality uniform in {10, ..., 99}
   (:func:`~uebench.defenses.jpeg.jpeg_stacked`, a host round trip), and plasma p defaults to 0.8.

Returned ``logits`` (train accuracy) are those of the last draw, as APBench; ``origin_loss`` is
the loss itself (the official SAL origin is the running max-over-draws loss).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import nn

from uebench.defenses.base import (
    LossDefense,
    Targets,
    check_range,
    kornia_call,
    per_sample_ce,
    register_defense,
)
from uebench.defenses.jpeg import jpeg_stacked

PAPER = "Qin et al., arXiv 2303.15127 (UEraser); APBench arXiv 2308.03258"
JPEG_QUALITIES = (10, 100)  # APBench: random.randrange(10, 100)


@functools.lru_cache(maxsize=8)
def _augmentation(plasma_p: float, device: torch.device) -> nn.Module:
    import kornia.augmentation as K  # loaded when used: `import uebench` stays light

    aug = K.AugmentationSequential(
        K.RandomPlasmaBrightness(
            roughness=(0.3, 0.7), intensity=(0.5, 1.0), same_on_batch=False, p=plasma_p,
            keepdim=True,
        ),
        K.RandomPlasmaContrast(roughness=(0.3, 0.7), p=plasma_p),
        K.RandomChannelShuffle(same_on_batch=False, p=0.5, keepdim=True),
        K.auto.TrivialAugment(),
    )
    return aug.to(device)  # kornia then draws its parameters on the device


@register_defense(
    "ueraser",
    kind="batch",
    paper=PAPER,
    official_origin="running_max",
    description="UEraser: plasma+shuffle+TrivialAugment, max CE over 5 draws for 50 epochs",
)
@dataclass(frozen=True)
class UEraser(LossDefense):
    """UEraser loss for a float batch N x C x H x W in [0, 1] on the training device."""

    repeats: int = 5
    repeat_epoch: int | None = 50  # None: every epoch
    jpeg: bool = False
    plasma_p: float | None = None  # None: 1.0 (APBench), 0.8 with jpeg (APBench UEraser_jpeg)

    def __post_init__(self) -> None:
        check_range(f"{self.name}.repeats", self.repeats, 1)
        if self.repeat_epoch is not None:
            check_range(f"{self.name}.repeat_epoch", self.repeat_epoch, 0)
        if self.plasma_p is not None:
            check_range(f"{self.name}.plasma_p", self.plasma_p, 0.0, 1.0)

    @property
    def plasma_probability(self) -> float:
        if self.plasma_p is not None:
            return self.plasma_p
        return 0.8 if self.jpeg else 1.0

    def draws(self, epoch: int) -> int:
        """Augmented copies per image in this (1-based) epoch."""
        adversarial = self.repeat_epoch is None or epoch <= self.repeat_epoch
        return self.repeats if adversarial else 1

    def augment(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """One draw of U(x): float N x C x H x W in [0, 1] -> same."""
        if self.jpeg:
            quality = int(torch.randint(*JPEG_QUALITIES, (1,), generator=gen))
            x = jpeg_stacked(x, quality)
        with kornia_call(gen, x.device):
            out = _augmentation(self.plasma_probability, x.device)(x)
        return out.clamp_(0.0, 1.0)  # kornia's ops overshoot [0, 1] by float rounding (1e-7)

    def loss(
        self, model: nn.Module, x: torch.Tensor, targets: Targets, *, epoch: int,
        gen: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        losses = []
        for _ in range(self.draws(epoch)):
            logits = model(self.augment(x, gen))
            losses.append(per_sample_ce(logits, targets))
        loss = torch.stack(losses).amax(dim=0).mean()
        return loss, logits, loss

    def describe(self) -> str:
        default = type(self)()
        extras = [f"K={self.repeats}"] if self.repeats != default.repeats else []
        if self.repeat_epoch != default.repeat_epoch:
            extras.append(f"ep={'all' if self.repeat_epoch is None else self.repeat_epoch}")
        if self.jpeg:
            extras.append("jpeg")
        if self.plasma_p is not None:
            extras.append(f"p={self.plasma_p:g}")
        return self.name + (f"({','.join(extras)})" if extras else "")


@register_defense(
    "ueraser-lite",
    kind="batch",
    paper=PAPER,
    official_origin="running_max",
    description="UEraser-Lite: one augmentation draw per image, every epoch",
)
@dataclass(frozen=True)
class UEraserLite(UEraser):
    repeat_epoch: int | None = 0


@register_defense(
    "ueraser-max",
    kind="batch",
    paper=PAPER,
    official_origin="running_max",
    description="UEraser-Max: max CE over 5 augmentation draws in every epoch (paper Table 2)",
)
@dataclass(frozen=True)
class UEraserMax(UEraser):
    repeat_epoch: int | None = None
