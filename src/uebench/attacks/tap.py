"""TAP: adversarial poisoning (targeted adversarial examples of a clean model as training data).

Fowl et al., "Adversarial Examples Make Strong Poisons", NeurIPS 2021, arXiv 2106.10807
(lhfowl/adversarial_poisons, a1d58d8).

Distance measure: linf, ``eps`` = 8/255. Input ``x`` float in [0, 1], N x C x H x W; returns
``delta`` shaped like ``x`` with ``x + delta`` in [0, 1].

1. Train a clean surrogate with :func:`uebench.train.fit` (the "conservative" recipe: 40 epochs,
   SGD-Nesterov lr 0.1, bs 128, wd 5e-4, crop+flip, step decay x0.1 at 3/8, 5/8, 7/8 of training
   (the original's "linear" schedule); see :func:`~uebench.attacks.surrogate.clean_surrogate_cfg`).
2. For every poison batch (512) run ``steps`` = 250 signed PGD steps of ``tau * eps`` from a
   clipped Gaussian start (randn * eps), through differentiable augmentation (random crop+flip of
   ``x + delta``, re-drawn every step). ``targeted`` (recommended by the authors) minimises the
   cross-entropy towards ``(y + 1) mod C``; untargeted maximises the cross-entropy of ``y``.
3. ``restarts`` = 8 independent crafting runs over the whole set; the one with the lowest mean
   objective at its last step is kept (as the original).

Deviations: the differentiable augmentation is integer-pixel crop (padding H/8) + flip, not the
original's bilinear random shifts; steps run in [0, 1] pixel space (the original steps in
normalised space by ``tau * eps / std`` per channel, the same pixel step).

Preset ``apbench``: untargeted (attack/tap_poisons.py). ``workdir`` keeps the surrogate (fit's
checkpoints) and every finished batch of every restart, so an interrupted run resumes.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from uebench.attacks.base import register_attack
from uebench.attacks.surrogate import (
    RunState,
    attack_precision,
    batched,
    pgd,
    train_clean_surrogate,
)
from uebench.data.loader import random_crop_flip
from uebench.errors import ConfigError
from uebench.runtime import Runtime

STREAM = 8300


def tap_targets(y: torch.Tensor, num_classes: int, targeted: bool) -> torch.Tensor:
    """The labels of TAP's objective: ``(y + 1) mod C`` when targeted, else ``y``."""
    return (y + 1) % num_classes if targeted else y


class _Crafter:
    """One batch of one restart: PGD from a clipped Gaussian start through crop+flip."""

    def __init__(self, model: nn.Module, target: torch.Tensor, sign: float, eps: float,
                 step_size: float, steps: int, augment: bool, rt: Runtime) -> None:
        self.model, self.target, self.sign, self.eps = model, target, sign, eps
        self.step_size, self.steps, self.augment, self.rt = step_size, steps, augment, rt
        self.precision = attack_precision(target.device)
        self.restart = 0

    def __call__(self, i: int, xb: torch.Tensor,
                 tb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gen = self.rt.generator(STREAM, self.restart, i)
        start = (torch.randn(xb.shape, generator=gen) * self.eps).to(xb.device)
        padding = max(1, xb.shape[-1] // 8)

        def aug(z: torch.Tensor) -> torch.Tensor:
            return random_crop_flip(z, gen, padding=padding) if self.augment else z

        def objective(logits: torch.Tensor) -> torch.Tensor:
            return self.sign * F.cross_entropy(logits, tb, reduction="none")

        return pgd(self.model, xb, start, objective, eps=self.eps, step_size=self.step_size,
                   steps=self.steps, transform=aug, precision=self.precision)


def _best_restart(x: torch.Tensor, craft: _Crafter, restarts: int, batch_size: int,
                  state: RunState, rt: Runtime) -> torch.Tensor:
    """Run the restarts, keep the lowest-scoring one (state in ``best.pt``, losers deleted)."""
    best = state.load("best.pt") or {"done": -1, "restart": -1, "score": float("inf")}
    best_delta = torch.zeros_like(x)
    for r in range(restarts):
        if r <= best["done"] and r != best["restart"]:
            continue  # finished and beaten: its batches were deleted
        craft.restart = r
        delta, loss = batched(x, craft.target, craft, batch_size=batch_size,
                              store=state.store(f"restart{r}"), rt=rt,
                              desc=f"tap restart {r + 1}/{restarts}")
        score = float(loss.mean())
        if r == best["restart"] or score < best["score"]:
            if best["restart"] not in (-1, r):
                state.remove(f"restart{best['restart']}")
            best.update(restart=r, score=score)
            best_delta = delta
        elif r > best["done"]:
            state.remove(f"restart{r}")
        best["done"] = max(best["done"], r)
        state.save("best.pt", best)
    return best_delta


@register_attack(
    "tap",
    norm="linf",
    presets={"apbench": {"targeted": False}},
    surrogate=True,
    # small settings for the registry-driven contract tests (64 tiny images, seconds)
    test_params={"surrogate": "tiny", "surrogate_epochs": 2, "steps": 3, "restarts": 2,
                 "batch_size": 32},
    description="adversarial poisons: class-targeted PGD on a clean surrogate, 8 restarts",
    paper="Fowl et al., NeurIPS 2021, arXiv 2106.10807",
)
def tap(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    num_classes: int,
    rt: Runtime,
    workdir: Path | None = None,
    eps: float = 8 / 255,
    steps: int = 250,
    tau: float = 0.05,
    restarts: int = 8,
    batch_size: int = 512,
    targeted: bool = True,
    augment: bool = True,
    surrogate: str = "resnet18",
    surrogate_width: float = 1.0,
    surrogate_epochs: int = 40,
) -> torch.Tensor:
    """Adversarial poisons.

    Args:
        x: clean images, float in [0, 1], N x C x H x W, on ``rt.device``.
        y: int64 labels (N,).
        num_classes: number of classes.
        rt: runtime (device, seed, progress).
        workdir: checkpoint directory (``workdir/tap``).
        eps: linf radius.
        steps: PGD iterations per restart.
        tau: step size as a fraction of ``eps``.
        restarts: crafting runs; the one with the lowest final objective is kept.
        batch_size: poison batch size.
        targeted: push towards ``(y + 1) mod C`` (else away from ``y``).
        augment: differentiable crop+flip inside the objective.
        surrogate, surrogate_width, surrogate_epochs: the clean model (shared with HYPO).

    Returns:
        ``delta`` shaped like ``x``.
    """
    if restarts < 1:
        raise ConfigError(f"tap needs restarts >= 1, got {restarts}")
    # restarts is left out: raising it later continues a finished run with more restarts
    config = dict(eps=eps, steps=steps, tau=tau, batch_size=batch_size, targeted=targeted,
                  augment=augment, surrogate=surrogate, surrogate_width=surrogate_width,
                  surrogate_epochs=surrogate_epochs)
    with RunState(workdir, "tap", config) as state:
        model = train_clean_surrogate(x, y, num_classes=num_classes, rt=rt, name=surrogate,
                                      width=surrogate_width, epochs=surrogate_epochs,
                                      run_dir=state.store("surrogate"))
        craft = _Crafter(model, tap_targets(y, num_classes, targeted), 1.0 if targeted else -1.0,
                         eps, tau * eps, steps, augment, rt)
        return _best_restart(x, craft, restarts, batch_size, state, rt)

