"""HYPO: hypocritical perturbations (Delusive Adversary P2), error-minimizing on a fixed model.

Tao et al., "Better Safe Than Sorry: Preventing Delusive Adversaries with Adversarial Training",
NeurIPS 2021, arXiv 2102.04716 (TLMichael/Delusive-Adversary, 8f033e0, poison.py P2).

Distance measure: ``norm`` = ``l2`` with ``eps`` = 0.5 (``original``) or ``linf`` with 8/255
(preset ``apbench``, attack/hypo_poisons.py); the budget norm follows the ``norm`` parameter
(``register_attack(norm_param="norm")``). Input ``x`` float in [0, 1], N x C x H x W; returns
``delta`` shaped like ``x`` with ``x + delta`` in [0, 1].

Algorithm: freeze a model trained on the clean data; for every batch (256) run ``steps`` = 100
PGD steps that *minimise* the cross-entropy of the true labels, starting from zero: L2 steps of
``step_size`` = eps / 5 along the L2-normalised gradient (``original``) or sign steps of 0.8/255
(``apbench``), each followed by projection onto the eps-ball and clamping to [0, 1].

Deviations: the crafting model is the zoo's ``resnet18`` trained by :func:`uebench.train.fit` with
TAP's conservative recipe (``surrogate_epochs`` = 40; the same seed gives the same model as TAP's),
not Delusive's pretrained VGG16 (no VGG in the zoo) nor APBench's bundled ResNet-18 checkpoint.
``workdir`` keeps the surrogate and every finished batch.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from uebench.attacks.base import register_attack
from uebench.attacks.surrogate import (
    RunState,
    attack_precision,
    batched,
    pgd,
    train_clean_surrogate,
)
from uebench.runtime import Runtime


@register_attack(
    "hypo",
    norm="l2",
    norm_param="norm",
    presets={"apbench": {"norm": "linf", "eps": 8 / 255, "step_size": 0.8 / 255}},
    surrogate=True,
    # small settings for the registry-driven contract tests (64 tiny images, seconds)
    test_params={"surrogate": "tiny", "surrogate_epochs": 2, "steps": 3, "batch_size": 32},
    description="hypocritical (Delusive P2) error-minimizing PGD on a fixed clean model",
    paper="Tao et al., NeurIPS 2021, arXiv 2102.04716",
)
def hypo(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    num_classes: int,
    rt: Runtime,
    workdir: Path | None = None,
    norm: str = "l2",
    eps: float = 0.5,
    steps: int = 100,
    step_size: float = 0.1,
    batch_size: int = 256,
    surrogate: str = "resnet18",
    surrogate_width: float = 1.0,
    surrogate_epochs: int = 40,
) -> torch.Tensor:
    """Hypocritical perturbations.

    Args:
        x: clean images, float in [0, 1], N x C x H x W, on ``rt.device``.
        y: int64 labels (N,).
        num_classes: number of classes.
        rt: runtime (device, seed, progress).
        workdir: checkpoint directory (``workdir/hypo``).
        norm: ``l2`` (normalised-gradient steps) or ``linf`` (sign steps); also the budget norm.
        eps: radius in that norm.
        steps, step_size: PGD descent steps and their length.
        batch_size: crafting batch size.
        surrogate, surrogate_width, surrogate_epochs: the clean model (shared with TAP).

    Returns:
        ``delta`` shaped like ``x``.
    """
    config = dict(norm=norm, eps=eps, steps=steps, step_size=step_size, batch_size=batch_size,
                  surrogate=surrogate, surrogate_width=surrogate_width,
                  surrogate_epochs=surrogate_epochs)
    precision = attack_precision(x.device)
    with RunState(workdir, "hypo", config) as state:
        model = train_clean_surrogate(x, y, num_classes=num_classes, rt=rt, name=surrogate,
                                      width=surrogate_width, epochs=surrogate_epochs,
                                      run_dir=state.store("surrogate"))

        def craft(i: int, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            def objective(logits: torch.Tensor) -> torch.Tensor:
                return F.cross_entropy(logits, yb, reduction="none")

            return pgd(model, xb, torch.zeros_like(xb), objective, eps=eps, step_size=step_size,
                       steps=steps, norm=norm, precision=precision)

        delta, _ = batched(x, y, craft, batch_size=batch_size, store=state.store("batches"), rt=rt,
                           desc="hypo")
    return delta
