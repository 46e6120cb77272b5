"""EM: error-minimizing noise (unlearnable examples, min-min), sample-wise and class-wise.

Huang et al., "Unlearnable Examples: Making Personal Data Unexploitable", ICLR 2021,
arXiv 2101.04898 (HanxunH/Unlearnable-Examples, f347155).

Distance measure: linf, ``eps`` = 8/255. Input ``x`` float in [0, 1], N x C x H x W; returns
``delta`` shaped like ``x`` with ``x + delta`` in [0, 1].

Algorithm (one *round*, repeated until the surrogate fits the noisy data):

1. train the surrogate for ``train_steps`` batches on ``clamp(x + delta, 0, 1)`` (SGD lr 0.1,
   momentum 0.9, wd 5e-4, grad-clip 5; batches continue through a shuffled stream of the data);
2. freeze it (eval mode) and update the noise of every batch with ``steps`` sign-gradient
   *descent* steps of ``step_size`` on the cross-entropy, projected to the eps-ball and [0, 1];
3. stop when the surrogate's accuracy on ``x + delta`` exceeds ``stop_acc`` or after
   ``max_rounds`` rounds (a cap the original lacks: some settings never converge, EM issue #24).

Class-wise (``classwise=True``, preset ``classwise``): one noise per class, searched on a seeded
class-stratified ``class_subset`` (20 %) of the data; after each batch's PGD every class's noise
becomes the mean of its samples' deltas, clamped to +-eps (original: 1 step of 0.8/255).

The loop of rounds is :func:`uebench.attacks.minmin.run_min_min` (shared with APBench's REM and
multi-task EM); this module is its classification objective, :class:`ClassificationMinMin`.

Deviations: the surrogate is trained by :func:`uebench.train.fit`, one ``fit`` "epoch" per round
on that round's ``train_steps`` batches; optimizer momentum carries over between rounds in memory
(:class:`~uebench.train.loop.FitState`; with a workdir also through fit's checkpoint, for resume),
so the surrogate sees exactly the original's sequence of SGD steps. The training clamps
``x + delta`` to [0, 1] (APBench does not).

Presets: ``apbench`` = 5 steps of 1.6/255, loader batch 128 (attack/em_poisons.py);
``classwise`` = the original class-wise setting. Long runs show a round bar (surrogate train
accuracy, accuracy on the noisy set) and resume from ``workdir`` after an interruption; raising
``max_rounds`` on a finished, unconverged run continues it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from uebench.attacks.base import clamp_to_image, register_attack
from uebench.attacks.minmin import MinMinSpec, run_min_min
from uebench.attacks.surrogate import (
    attack_precision,
    batched,
    build_surrogate,
    pgd,
)
from uebench.config import TrainCfg
from uebench.data.base import stratified_subset
from uebench.runtime import Runtime, derive_seed
from uebench.train.classification import evaluate, fit
from uebench.train.loop import FitState

STREAM = 8100


def _ce(y: torch.Tensor, sign: float = 1.0):
    return lambda logits: sign * F.cross_entropy(logits, y, reduction="none")


class ClassificationMinMin:
    """The min-min objective of a classifier: cross-entropy of the labels, sample-wise noise (with
    APBench-REM's min-max seeding when ``spec.seed_steps``) or class-wise noise searched on a
    seeded class-stratified subset (a :class:`~uebench.attacks.minmin.MinMinTask`)."""

    stream = STREAM

    def __init__(self, x: torch.Tensor, y: torch.Tensor, spec: MinMinSpec, *, num_classes: int,
                 rt: Runtime, surrogate: str, width: float) -> None:
        self.x, self.y, self.spec, self.rt = x, y, spec, rt
        self.num_classes, self.surrogate_name, self.width = num_classes, surrogate, width
        self.work = None
        if spec.classwise:
            n_sub = max(num_classes, round(spec.class_subset * x.shape[0]))
            self.work = stratified_subset(y.cpu(), n_sub,
                                          derive_seed(rt.seed, STREAM, 5)).to(x.device)
        self.xw, self.yw = (x, y) if self.work is None else (x[self.work], y[self.work])
        self.size = int(self.xw.shape[0])
        self.b = min(spec.batch_size, self.size)
        self.precision = attack_precision(x.device)

    def initial(self) -> dict[str, Any]:
        spec, x = self.spec, self.x
        shape = (self.num_classes, *x.shape[1:]) if spec.classwise else tuple(x.shape)
        noise = torch.zeros(shape, device=x.device)
        if spec.random_start:
            noise = torch.rand(shape, generator=self.rt.generator(STREAM, 4)).to(x.device)
            noise = (noise * 2 - 1) * spec.eps
            noise = noise if spec.classwise else clamp_to_image(x, noise)
        seed = torch.zeros_like(noise) if spec.seed_steps > 0 else None
        return {"noise": noise, "seed": seed}

    def surrogate(self) -> nn.Module:
        return build_surrogate(self.surrogate_name, self.x, self.num_classes, width=self.width,
                               rt=self.rt, stream=(STREAM, 0))

    def working_images(self) -> torch.Tensor:
        return self.xw

    def per_sample(self, noise: torch.Tensor) -> torch.Tensor:
        return noise[self.yw] if self.spec.classwise else noise

    def fit_round(self, model: nn.Module, idx: torch.Tensor, images: torch.Tensor,
                  cfg: TrainCfg, rt: Runtime, run_dir: Path | None, state: FitState,
                  desc: str) -> list[dict[str, Any]]:
        return fit(model, images, self.yw[idx], cfg=cfg, rt=rt, run_dir=run_dir, state=state,
                   desc=desc)

    def update(self, model: nn.Module, noise: torch.Tensor, seed: torch.Tensor | None,
               rnd: int) -> torch.Tensor:
        if self.spec.classwise:
            return self._update_classwise(model, noise, rnd)
        return self._update_samplewise(model, noise, seed)

    def _update_samplewise(self, model: nn.Module, delta: torch.Tensor,
                           seed: torch.Tensor | None) -> torch.Tensor:
        spec, b, precision = self.spec, self.b, self.precision

        def craft(i: int, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            sl = slice(i * b, i * b + xb.shape[0])
            start = delta[sl]
            if seed is not None:  # min-max step first; its result is the seed state and the start
                start, _ = pgd(model, xb, seed[sl], _ce(yb, -1.0), eps=spec.seed_eps,
                               step_size=spec.seed_step_size, steps=spec.seed_steps,
                               precision=precision)
                seed[sl] = start
            return pgd(model, xb, start, _ce(yb), eps=spec.eps, step_size=spec.step_size,
                       steps=spec.steps, precision=precision)

        return batched(self.x, self.y, craft, batch_size=b, store=None, rt=self.rt,
                       desc="noise update")[0]

    def _update_classwise(self, model: nn.Module, noise: torch.Tensor, rnd: int) -> torch.Tensor:
        spec, b, xw, yw = self.spec, self.b, self.xw, self.yw
        noise = noise.clone()
        order = torch.randperm(xw.shape[0], generator=self.rt.generator(STREAM, 3, rnd))
        order = order.to(xw.device)
        for i in range(math.ceil(xw.shape[0] / b)):
            idx = order[i * b : (i + 1) * b]
            xb, yb = xw[idx], yw[idx]
            eta, _ = pgd(model, xb, noise[yb], _ce(yb), eps=spec.eps, step_size=spec.step_size,
                         steps=spec.steps, precision=self.precision)
            sums = torch.zeros_like(noise).index_add_(0, yb, eta)
            counts = torch.bincount(yb, minlength=noise.shape[0])
            seen = counts > 0
            noise[seen] = (sums[seen] / counts[seen].view(-1, 1, 1, 1)).clamp(-spec.eps, spec.eps)
        return noise

    def score(self, model: nn.Module, images: torch.Tensor) -> dict[str, float]:
        return {"acc": evaluate(model, images, self.yw, precision=self.precision)["acc"]}

    def fitted(self, score: Mapping[str, float]) -> bool:
        return score["acc"] > self.spec.stop_acc

    def postfix(self, rows: list[dict[str, Any]], score: Mapping[str, float]) -> dict[str, str]:
        return {"surrogate_acc": f"{rows[-1]['train_acc']:.3f}", "noisy_acc": f"{score['acc']:.3f}"}

    def summary(self, score: Mapping[str, float]) -> dict[str, float]:
        return {"surrogate_acc_on_poison": score["acc"]}


def min_min_noise(
    x: torch.Tensor, y: torch.Tensor, spec: MinMinSpec, *, num_classes: int, rt: Runtime,
    workdir: Path | None, surrogate: str, width: float, name: str,
) -> torch.Tensor:
    """The classifier's min-min search (:func:`~uebench.attacks.minmin.run_min_min` with a
    :class:`ClassificationMinMin`); ``delta`` for every sample (class noise indexed by label)."""
    config = {**dataclasses.asdict(spec), "surrogate": surrogate, "surrogate_width": width}
    config.pop("max_rounds")  # may be raised to continue a run
    task = ClassificationMinMin(x, y, spec, num_classes=num_classes, rt=rt, surrogate=surrogate,
                                width=width)
    result = run_min_min(task, batch_size=task.b, train_steps=spec.train_steps,
                         max_rounds=spec.max_rounds, stop_acc=spec.stop_acc, rt=rt,
                         workdir=workdir, name=name, config=config)
    delta = result.noise[y] if spec.classwise else result.noise
    return clamp_to_image(x, delta)


@register_attack(
    "em",
    norm="linf",
    presets={
        "apbench": {"steps": 5, "step_size": 1.6 / 255, "batch_size": 128},
        "classwise": {"classwise": True, "steps": 1},
    },
    surrogate=True,
    # small settings for the registry-driven contract tests (64 tiny images, seconds)
    test_params={"surrogate": "tiny", "steps": 2, "train_steps": 2, "batch_size": 32,
                 "max_rounds": 2, "stop_acc": 1.0},
    description="error-minimizing noise (min-min with an alternately trained surrogate); "
    "sample- or class-wise",
    paper="Huang et al., ICLR 2021, arXiv 2101.04898",
)
def em(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    num_classes: int,
    rt: Runtime,
    workdir: Path | None = None,
    eps: float = 8 / 255,
    steps: int = 20,
    step_size: float = 0.8 / 255,
    classwise: bool = False,
    class_subset: float = 0.2,
    train_steps: int = 10,
    batch_size: int = 512,
    stop_acc: float = 0.99,
    max_rounds: int = 20,
    random_start: bool = False,
    surrogate: str = "resnet18",
    surrogate_width: float = 1.0,
) -> torch.Tensor:
    """Error-minimizing noise.

    Args:
        x: clean images, float in [0, 1], N x C x H x W, on ``rt.device``.
        y: int64 labels (N,).
        num_classes: number of classes.
        rt: runtime (device, seed, progress).
        workdir: checkpoint directory (``workdir/em``); resumes an interrupted run.
        eps: linf radius.
        steps, step_size: PGD descent steps per noise update and their size.
        classwise: one noise per class (searched on ``class_subset`` of the data).
        class_subset: fraction of the data the class-wise search uses.
        train_steps: surrogate SGD batches per round.
        batch_size: surrogate and noise-update batch size.
        stop_acc: stop once the surrogate's accuracy on ``x + delta`` exceeds this; 1.0 never
            stops early (always ``max_rounds`` rounds: the min-min objective optimised further).
        max_rounds: cap on rounds (EM has none; 20 rounds of 10 batches + a full noise pass).
        random_start: start from uniform(-eps, eps) instead of zero noise.
        surrogate, surrogate_width: zoo model of the surrogate and its width multiplier.

    Returns:
        ``delta`` shaped like ``x``.
    """
    spec = MinMinSpec(eps=eps, steps=steps, step_size=step_size, batch_size=batch_size,
                      train_steps=train_steps, stop_acc=stop_acc, max_rounds=max_rounds,
                      classwise=classwise, class_subset=class_subset, random_start=random_start)
    return min_min_noise(x, y, spec, num_classes=num_classes, rt=rt, workdir=workdir,
                         surrogate=surrogate, width=surrogate_width, name="em")
