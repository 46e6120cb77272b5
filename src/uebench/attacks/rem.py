"""REM: robust error-minimizing noise (min-min-max with expectation over transformations).

Fu et al., "Robust Unlearnable Examples: Protecting Data Against Adversarial Learning",
ICLR 2022, arXiv 2203.14533 (fshp971/robust-unlearnable-examples, adf2060).

Distance measure: linf, ``eps`` = 8/255 (the defensive noise); the adversary of the min-max
inner problem has radius ``adv_eps`` = 4/255. Input ``x`` float in [0, 1], N x C x H x W;
returns ``delta`` shaped like ``x`` with ``x + delta`` in [0, 1].

``variant="original"`` (Fu et al.), for each of ``train_steps`` training steps (batch 128):

1. the batch's noise restarts from uniform(-eps, eps) and takes ``steps`` PGD *descent* steps of
   ``step_size``; each gradient sums ``samp_num`` random crop+flip transforms T: for each, a PGD
   *ascent* adversary rho (``adv_steps`` of ``adv_step_size``, random start) on T(x + delta),
   and the cross-entropy gradient at T(x + delta) + rho is pushed back to delta through T (rho
   held fixed);
2. one SGD step of adversarial training of the surrogate on PGD(``adv_eps``) examples of
   T(x + delta) (lr 0.1, x0.1 every ``lr_decay_steps``, momentum 0.9, wd 5e-4);

then the noise of the whole dataset is regenerated with the final surrogate (step 1 per batch).

Implementation: the surrogate is trained by :func:`uebench.train.fit` on the clean images, with a
``batch_loss`` that crafts each batch's noise and adversarial examples from the batch's own seeded
stream (``BatchInfo.generator``), so fit owns the optimizer, the schedule, the batch order and the
epoch checkpoints (``workdir/rem/surrogate``) and a resumed run draws what an uninterrupted one
would; the
final regeneration keeps every finished batch in ``workdir/rem/final<epochs>``.
Deviations: ``train_steps`` is rounded up to whole epochs and the lr decays at the nearest epoch
boundary (CIFAR-10: 13 epochs of 390 steps = 5070 steps, decays after 1950 and 3900); the noise
stays float (the original stores round(255 delta) as int8); transforms are integer-pixel
crops (padding 4) and flips.

``variant="apbench"`` (preset ``apbench``; lafeat/apbench attack/rem_poisons.py) is APBench's
simplification, not Fu et al.'s REM: EM's alternating loop (10 surrogate batches, then a noise
pass, stop at ``stop_acc`` or ``max_rounds``) in which each batch's noise update is a min-max
PGD (``adv_steps`` of ``adv_step_size`` in the ``adv_eps`` ball, from the previous min-max
result) seeding a min-min PGD (``steps`` of ``step_size``); no transformations, no adversarial
training. ``train_steps``, ``samp_num`` and ``lr_decay_steps`` only apply to ``original``;
``stop_acc`` and ``max_rounds`` only to ``apbench``.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from uebench.attacks.base import clamp_to_image, project_linf, register_attack
from uebench.attacks.em import min_min_noise
from uebench.attacks.minmin import MinMinSpec
from uebench.attacks.surrogate import (
    RunState,
    attack_precision,
    batched,
    build_surrogate,
    pgd,
    sub_runtime,
    uniform_start,
)
from uebench.config import TrainCfg
from uebench.data.loader import random_crop_flip
from uebench.errors import ConfigError
from uebench.runtime import Runtime, autocast
from uebench.train.classification import fit
from uebench.train.loop import BatchInfo

STREAM = 8200
PADDING = 4  # crop padding of the training transform (CIFAR RandomCrop(32, padding=4))


class _Rem:
    """Defensive noise and adversarial examples for one batch (fit's ``batch_loss``)."""

    def __init__(self, params: dict, rt: Runtime, device: torch.device) -> None:
        self.p, self.rt = params, rt
        self.precision = attack_precision(device)

    def _adversary(self, model: nn.Module, base: torch.Tensor, y: torch.Tensor,
                   gen: torch.Generator) -> torch.Tensor:
        """PGD ascent in the adv_eps ball around ``base`` (random start); returns the point."""
        p = self.p
        rho, _ = pgd(model, base, uniform_start(base, p["adv_eps"], gen),
                     lambda logits: -F.cross_entropy(logits, y, reduction="none"),
                     eps=p["adv_eps"], step_size=p["adv_step_size"], steps=p["adv_steps"],
                     precision=self.precision)
        return base + rho

    def defend(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
               gen: torch.Generator) -> torch.Tensor:
        """min over delta of E_T max_rho CE(f(T(x + delta) + rho), y), from a random start."""
        p, training = self.p, model.training
        model.eval()
        delta = uniform_start(x, p["eps"], gen)
        for _ in range(p["steps"]):
            d = delta.detach().requires_grad_(True)
            grad = torch.zeros_like(d)
            for _ in range(p["samp_num"]):
                moved = random_crop_flip(x + d, gen, padding=PADDING)
                adv = self._adversary(model, moved.detach(), y, gen).requires_grad_(True)
                with autocast(x.device, self.precision):
                    loss = F.cross_entropy(model(adv).float(), y)
                (at_adv,) = torch.autograd.grad(loss, adv)
                # first order: the gradient at the adversarial point, back through T to delta
                grad += torch.autograd.grad((moved * at_adv).sum(), d)[0]
            with torch.no_grad():
                delta = clamp_to_image(x, project_linf(d - p["step_size"] * grad.sign(), p["eps"]))
        model.train(training)
        return delta.detach()

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 info: BatchInfo) -> tuple[torch.Tensor, torch.Tensor]:
        gen = info.generator(STREAM)  # the batch's own stream: resume draws the same
        delta = self.defend(model, x, y, gen)
        moved = random_crop_flip(x + delta, gen, padding=PADDING)
        model.eval()  # the adversary attacks a frozen model, as in the original
        adv = self._adversary(model, moved, y, gen).detach()
        model.train()
        logits = model(adv)
        return F.cross_entropy(logits.float(), y), logits


def _surrogate_cfg(n: int, batch_size: int, train_steps: int, lr: float,
                   lr_decay_steps: int) -> TrainCfg:
    spe = n // batch_size
    epochs = math.ceil(train_steps / spe)
    decays = range(lr_decay_steps, train_steps, lr_decay_steps) if lr_decay_steps > 0 else ()
    milestones = tuple(float(max(1, round(s / spe))) for s in decays)
    return TrainCfg(epochs=epochs, batch_size=batch_size, optimizer="sgd", lr=lr, momentum=0.9,
                    weight_decay=5e-4, schedule="multistep", milestones=milestones, gamma=0.1,
                    augment="none", drop_last=True)


def _rem_original(x: torch.Tensor, y: torch.Tensor, p: dict, *, num_classes: int, rt: Runtime,
                  workdir: Path | None) -> torch.Tensor:
    config = {k: v for k, v in p.items() if k not in ("train_steps", "stop_acc", "max_rounds")}
    b = min(p["batch_size"], x.shape[0])
    cfg = _surrogate_cfg(x.shape[0], b, p["train_steps"], p["lr"], p["lr_decay_steps"])
    with RunState(workdir, "rem", config) as state:
        sdir = state.dir("surrogate")
        model = build_surrogate(p["surrogate"], x, num_classes, width=p["surrogate_width"], rt=rt,
                                stream=(STREAM, 0))
        rem = _Rem(p, rt, x.device)
        fit(model, x, y, cfg=cfg, rt=sub_runtime(rt, STREAM, 1, progress=True), run_dir=sdir,
            batch_loss=rem, desc="rem surrogate")
        model.eval()
        final = f"final{cfg.epochs}"
        for old in state.root.glob("final*"):
            if old.name != final:
                state.remove(old.name)

        def craft(i: int, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            delta = rem.defend(model, xb, yb, rt.generator(STREAM, 4, i))
            return delta, torch.zeros(xb.shape[0], device=xb.device)

        delta, _ = batched(x, y, craft, batch_size=b, store=state.store(final), rt=rt,
                           desc="rem final noise")
    return delta


def _rem_apbench(x: torch.Tensor, y: torch.Tensor, p: dict, *, num_classes: int, rt: Runtime,
                 workdir: Path | None) -> torch.Tensor:
    spec = MinMinSpec(eps=p["eps"], steps=p["steps"], step_size=p["step_size"],
                      batch_size=p["batch_size"], train_steps=10, stop_acc=p["stop_acc"],
                      max_rounds=p["max_rounds"], seed_eps=p["adv_eps"],
                      seed_steps=p["adv_steps"], seed_step_size=p["adv_step_size"])
    return min_min_noise(x, y, spec, num_classes=num_classes, rt=rt, workdir=workdir,
                         surrogate=p["surrogate"], width=p["surrogate_width"], name="rem-apbench")


VARIANTS = {"original": _rem_original, "apbench": _rem_apbench}


@register_attack(
    "rem",
    norm="linf",
    presets={"apbench": {"variant": "apbench", "steps": 5, "adv_steps": 5}},
    surrogate=True,
    # small settings for the registry-driven contract tests (64 tiny images, seconds)
    test_params={"surrogate": "tiny", "steps": 2, "samp_num": 2, "adv_steps": 2, "train_steps": 4,
                 "batch_size": 32, "max_rounds": 2, "stop_acc": 1.0},
    description="robust error-minimizing noise (min-min-max, EOT, adversarially trained surrogate)",
    paper="Fu et al., ICLR 2022, arXiv 2203.14533",
)
def rem(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    num_classes: int,
    rt: Runtime,
    workdir: Path | None = None,
    eps: float = 8 / 255,
    steps: int = 10,
    step_size: float = 1.6 / 255,
    samp_num: int = 5,
    adv_eps: float = 4 / 255,
    adv_steps: int = 10,
    adv_step_size: float = 0.8 / 255,
    train_steps: int = 5000,
    batch_size: int = 128,
    lr: float = 0.1,
    lr_decay_steps: int = 2000,
    variant: str = "original",
    stop_acc: float = 0.99,
    max_rounds: int = 20,
    surrogate: str = "resnet18",
    surrogate_width: float = 1.0,
) -> torch.Tensor:
    """Robust error-minimizing noise.

    Args:
        x: clean images, float in [0, 1], N x C x H x W, on ``rt.device``.
        y: int64 labels (N,).
        num_classes: number of classes.
        rt: runtime (device, seed, progress).
        workdir: checkpoint directory (``workdir/rem`` or ``workdir/rem-apbench``).
        eps, steps, step_size: defensive noise radius and its PGD descent.
        samp_num: transformations averaged per descent step (EOT).
        adv_eps, adv_steps, adv_step_size: the adversary (PGD ascent) of the min-max problem.
        train_steps, batch_size, lr, lr_decay_steps: surrogate training (``original``).
        variant: ``original`` (Fu et al.) or ``apbench`` (APBench's simplification).
        stop_acc, max_rounds: stop rule of the ``apbench`` loop.
        surrogate, surrogate_width: zoo model of the surrogate and its width multiplier.

    Returns:
        ``delta`` shaped like ``x``.
    """
    if variant not in VARIANTS:
        raise ConfigError(f"rem variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    params = dict(eps=eps, steps=steps, step_size=step_size, samp_num=samp_num, adv_eps=adv_eps,
                  adv_steps=adv_steps, adv_step_size=adv_step_size, train_steps=train_steps,
                  batch_size=batch_size, lr=lr, lr_decay_steps=lr_decay_steps, stop_acc=stop_acc,
                  max_rounds=max_rounds, surrogate=surrogate, surrogate_width=surrogate_width)
    return VARIANTS[variant](x, y, params, num_classes=num_classes, rt=rt, workdir=workdir)
