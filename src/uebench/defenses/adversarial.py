"""Adversarial training (Madry et al.): train on PGD adversarial examples of each batch.

Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018,
arXiv 1706.06083; as a defense against availability poisons: Tao et al., "Better Safe Than Sorry:
Preventing Delusive Adversaries with Adversarial Training", NeurIPS 2021, arXiv 2102.04716.

``at`` is APBench's preset (lafeat/apbench 9a6fb91, madrys.py ``MadrysLoss``): linf, eps 8/255,
10 steps of 2/255 ascending the cross-entropy with sign steps, random start
``x + 2/255 * N(0, 1)``, the model in eval mode while attacking (BN running statistics, no
dropout) and in train mode for the training forward on the adversarial batch.
``at-l2`` has its own radius: APBench's ``--at_type L_2`` reuses the linf default 8/255 as an L2
radius (a known pitfall; docs/defenses.md, "Details and deviations"); we use eps 0.5 with 7 steps
of eps/5 = 0.1, the L2 training setting of Tao et al. (TLMichael/Delusive-Adversary, main.py),
which is also the CIFAR-10 L2 setting of Madry et al.'s robustness library. Its start is
APBench's L_2 one: a random direction of norm ``step_size``.

The attack is :func:`uebench.adversary.pgd`, shared with the attacks. Deviation from APBench: the
random start is projected onto the ball and the image range before the first gradient step
(APBench evaluates the first gradient at the unclamped start). Returned ``logits`` are those of
the adversarial batch (APBench's train accuracy is robust train accuracy); ``origin_loss`` is the
adversarial loss (the official SAL origin: the running adversarial loss).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from uebench.adversary import pgd, random_start
from uebench.defenses.base import (
    LossDefense,
    Targets,
    check_range,
    device_generator,
    per_sample_ce,
    register_defense,
)

PAPER = "Madry et al., ICLR 2018, arXiv 1706.06083; Tao et al., NeurIPS 2021, arXiv 2102.04716"


@register_defense(
    "at",
    kind="procedure",
    paper=PAPER,
    official_origin="running_adversarial",
    description="adversarial training, linf PGD eps 8/255, 10 steps of 2/255, random start",
)
@dataclass(frozen=True)
class AdversarialTraining(LossDefense):
    """PGD adversarial training loss for a float batch N x C x H x W in [0, 1]."""

    norm: ClassVar[str] = "linf"
    eps: float = 8 / 255
    step_size: float = 2 / 255
    steps: int = 10

    def __post_init__(self) -> None:
        check_range(f"{self.name}.eps", self.eps, 0.0)
        check_range(f"{self.name}.step_size", self.step_size, 0.0)
        check_range(f"{self.name}.steps", self.steps, 1)

    def perturb(self, model: nn.Module, x: torch.Tensor, targets: Targets,
                gen: torch.Generator) -> torch.Tensor:
        """Adversarial images (x + delta, in [0, 1]) against ``model`` in eval mode."""
        training = model.training
        model.eval()
        start = random_start(x, self.norm, self.step_size, device_generator(gen, x.device))
        delta, _ = pgd(
            model, x, start, lambda logits: -per_sample_ce(logits, targets), eps=self.eps,
            step_size=self.step_size, steps=self.steps, norm=self.norm,
        )
        model.train(training)
        return x + delta

    def loss(
        self, model: nn.Module, x: torch.Tensor, targets: Targets, *, epoch: int,
        gen: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = model(self.perturb(model, x, targets, gen))
        loss = per_sample_ce(logits, targets).mean()
        return loss, logits, loss

    def describe(self) -> str:
        eps = f"{self.eps * 255:g}/255" if self.norm == "linf" else f"{self.eps:g}"
        return f"{self.name}({self.norm} {eps},{self.steps}x)"


@register_defense(
    "at-l2",
    kind="procedure",
    paper=PAPER,
    official_origin="running_adversarial",
    description="adversarial training, L2 PGD eps 0.5, 7 steps of 0.1 (Tao et al.), random start",
)
@dataclass(frozen=True)
class AdversarialTrainingL2(AdversarialTraining):
    norm: ClassVar[str] = "l2"
    eps: float = 0.5
    step_size: float = 0.1
    steps: int = 7
