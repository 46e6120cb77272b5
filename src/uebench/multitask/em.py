"""Multi-task error-minimizing noise: EM whose objective is the sum of chosen tasks' losses.

EM (Huang et al., "Unlearnable Examples", ICLR 2021, arXiv 2101.04898) with a multi-task
surrogate, as the paper's multi-task and cross-task experiments use it (Ye et al., ICLR 2025,
arXiv:2509.08058, §3.4, Figs. 7-8: "EM (*) ... using the loss function of a specific task, All
... the sum of loss functions from all tasks"). Distance measure: linf, ``eps`` = 8/255. Images
float in [0, 1]; returns ``delta`` shaped like the images with ``x + delta`` in [0, 1].

EM's min-min loop (:func:`uebench.attacks.minmin.run_min_min`) with a multi-task objective
(:class:`MultiTaskMinMin`). One *round*, repeated ``max_rounds`` times or until the surrogate fits
the noisy data:

1. train the surrogate (a :func:`~uebench.multitask.model.build_multitask_model` with a head per
   chosen task) for ``train_steps`` batches on ``clamp(x + delta, 0, 1)`` and the chosen tasks'
   summed loss, through :func:`~uebench.multitask.train.fit_multitask` (EM's optimiser: SGD lr
   0.1, momentum 0.9, wd 5e-4, grad-clip 5; batches from a seeded stream of the data; momentum
   carried across rounds in memory, as :mod:`uebench.attacks.em`);
2. freeze it (eval mode) and update every sample's noise with ``steps`` sign-gradient *descent*
   steps of ``step_size`` on the sum over the chosen tasks of the sample's loss
   (:func:`~uebench.multitask.losses.sample_loss`), projected to the eps-ball and [0, 1];
3. stop when every chosen task is a classification task whose accuracy on ``x + delta`` exceeds
   ``stop_acc`` (EM's rule). Dense tasks have no accuracy: with one among the chosen tasks the
   search runs ``max_rounds`` rounds (a cap the original lacks).

Resumable from ``workdir`` (``workdir/mt-em``) like the single-task attacks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from uebench.attacks.minmin import run_min_min
from uebench.attacks.surrogate import attack_precision, batched, pgd
from uebench.config import TrainCfg
from uebench.errors import ConfigError
from uebench.multitask.dataset import MultiTaskSet
from uebench.multitask.losses import sample_loss
from uebench.multitask.model import build_multitask_model
from uebench.multitask.train import evaluate_multitask, fit_multitask
from uebench.poisons.budget import clamp_to_image
from uebench.runtime import Runtime, derive_seed
from uebench.train.loop import FitState

STREAM = 8150  # seed stream of this attack (distinct from EM's 8100)


class SummedLoss(nn.Module):
    """``forward(x) -> (N,)``: the per-sample sum of the chosen tasks' losses of ``model``
    against fixed targets (a batch's), the objective :func:`uebench.adversary.pgd` minimises."""

    def __init__(self, model: nn.Module, data: MultiTaskSet) -> None:
        super().__init__()
        self.model = model
        self.losses = {t: sample_loss(spec) for t, spec in data.tasks.items()}
        self.targets: dict[str, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = self.model(x)
        return torch.stack([fn(outputs[t].float(), self.targets[t])
                            for t, fn in self.losses.items()]).sum(0)


@dataclass
class MultiTaskEMResult:
    """The noise, the final surrogate and one ``history`` row per round (loss/metrics of the
    surrogate on ``x + delta``)."""

    delta: torch.Tensor
    surrogate: nn.Module
    history: list[dict[str, Any]]


class MultiTaskMinMin:
    """The min-min objective of a multi-task surrogate: the per-sample sum of the chosen tasks'
    losses, sample-wise noise, EM's stopping rule on classification tasks (a
    :class:`~uebench.attacks.minmin.MinMinTask`)."""

    stream = STREAM

    def __init__(self, data: MultiTaskSet, x: torch.Tensor, *, rt: Runtime, eps: float,
                 steps: int, step_size: float, batch_size: int, stop_acc: float, backbone: str,
                 width: float, decoder_channels: int) -> None:
        self.data, self.x, self.rt = data, x, rt
        self.eps, self.steps, self.step_size, self.b = eps, steps, step_size, batch_size
        self.stop_acc = stop_acc
        self.backbone, self.width, self.decoder_channels = backbone, width, decoder_channels
        self.size = len(data)
        self.precision = attack_precision(x.device)
        self.targets = {t: v.to(x.device) for t, v in data.targets.items()}
        self.objective: SummedLoss | None = None

    def initial(self) -> dict[str, Any]:
        return {"noise": torch.zeros_like(self.x), "seed": None}

    def surrogate(self) -> nn.Module:
        x = self.x
        mean = x.mean(dim=(0, 2, 3)).tolist()
        std = (x.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist() if x.shape[0] > 1
               else [0.5] * x.shape[1])
        torch.manual_seed(derive_seed(self.rt.seed, STREAM, 0))  # initial weights: the seed only
        c, h, w = self.data.image_shape
        model = build_multitask_model(self.data.tasks, backbone=self.backbone, in_channels=c,
                                      image_size=(h, w), width=self.width,
                                      decoder_channels=self.decoder_channels, mean=mean, std=std)
        model = model.to(self.rt.device)
        self.objective = SummedLoss(model, self.data)
        return model

    def working_images(self) -> torch.Tensor:
        return self.x

    def per_sample(self, noise: torch.Tensor) -> torch.Tensor:
        return noise

    def fit_round(self, model: nn.Module, idx: torch.Tensor, images: torch.Tensor,
                  cfg: TrainCfg, rt: Runtime, run_dir: Path | None, state: FitState,
                  desc: str) -> list[dict[str, Any]]:
        return fit_multitask(model, self.data.subset(idx.cpu()), cfg=cfg, rt=rt, images=images,
                             state=state, run_dir=run_dir, desc=desc)

    def update(self, model: nn.Module, delta: torch.Tensor, seed: torch.Tensor | None,
               rnd: int) -> torch.Tensor:
        """One PGD pass of ``steps`` descent steps over every sample (batch by batch)."""
        assert self.objective is not None and self.objective.model is model
        objective = self.objective.eval()

        def craft(i: int, xb: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            objective.targets = {t: v[idx] for t, v in self.targets.items()}
            return pgd(objective, xb, delta[idx], lambda loss: loss, eps=self.eps,
                       step_size=self.step_size, steps=self.steps, precision=self.precision)

        index = torch.arange(self.x.shape[0], device=self.x.device)  # "labels": the positions
        return batched(self.x, index, craft, batch_size=self.b, store=None, rt=self.rt,
                       desc="noise update")[0]

    def score(self, model: nn.Module, images: torch.Tensor) -> dict[str, float]:
        ev = evaluate_multitask(model, self.data, images=images, batch_size=self.b,
                                precision=self.precision)
        return {f"noisy/{k}": v for k, v in ev.items()}

    def fitted(self, score: Mapping[str, float]) -> bool:
        """EM's rule, for classification objectives only (dense tasks never stop early)."""
        if any(spec.kind != "classification" for spec in self.data.tasks.values()):
            return False
        return all(score[f"noisy/{t}/accuracy"] > self.stop_acc for t in self.data.tasks)

    def postfix(self, rows: list[dict[str, Any]], score: Mapping[str, float]) -> dict[str, str]:
        return {"noisy_loss": f"{score['noisy/loss']:.3f}"}

    def summary(self, score: Mapping[str, float]) -> dict[str, float]:
        return {k: v for k, v in score.items() if k != "round"}


def _check(eps: float, steps: int, train_steps: int, max_rounds: int, batch_size: int) -> None:
    if not 0 < eps <= 1 or min(steps, train_steps, max_rounds, batch_size) < 1:
        raise ConfigError("multi-task EM needs 0 < eps <= 1 and steps, train_steps, max_rounds, "
                          f"batch_size >= 1; got {eps}, {steps}, {train_steps}, {max_rounds}, "
                          f"{batch_size}")


def multitask_em(
    data: MultiTaskSet, *, tasks: Sequence[str] | None = None, rt: Runtime,
    workdir: Path | None = None, eps: float = 8 / 255, steps: int = 20,
    step_size: float = 0.8 / 255, train_steps: int = 10, batch_size: int = 512,
    stop_acc: float = 0.99, max_rounds: int = 20, surrogate: str = "lenet",
    surrogate_width: float = 1.0, decoder_channels: int = 32,
) -> MultiTaskEMResult:
    """Error-minimizing noise for the summed loss of ``tasks`` (see the module docstring).

    Args:
        data: the clean training split (uint8 images, every target).
        tasks: the tasks whose losses the noise minimises (default: all of ``data``'s).
        rt: device, seed, progress.
        workdir: checkpoint directory (resumes an interrupted search).
        eps, steps, step_size: linf radius, PGD descent steps per update and their size.
        train_steps: surrogate SGD batches per round.
        batch_size: surrogate and noise-update batch size.
        stop_acc: EM's stopping accuracy (classification objectives only).
        max_rounds: cap on rounds.
        surrogate, surrogate_width, decoder_channels: the surrogate's backbone
            (:data:`~uebench.multitask.backbones.BACKBONES`), its width, its decoder width.
    """
    chosen = data.select(list(tasks)) if tasks else data
    _check(eps, steps, train_steps, max_rounds, batch_size)
    x = chosen.float().to(rt.device)
    b = min(batch_size, len(chosen))
    config = {"tasks": list(chosen.task_names), "eps": eps, "steps": steps,
              "step_size": step_size, "train_steps": train_steps, "batch_size": b,
              "stop_acc": stop_acc, "surrogate": surrogate, "width": surrogate_width,
              "decoder_channels": decoder_channels, "n": len(chosen)}
    task = MultiTaskMinMin(chosen, x, rt=rt, eps=eps, steps=steps, step_size=step_size,
                           batch_size=b, stop_acc=stop_acc, backbone=surrogate,
                           width=surrogate_width, decoder_channels=decoder_channels)
    result = run_min_min(task, batch_size=b, train_steps=train_steps, max_rounds=max_rounds,
                         stop_acc=stop_acc, rt=rt, workdir=workdir, name="mt-em", config=config)
    return MultiTaskEMResult(clamp_to_image(x, result.noise), result.surrogate.eval(),
                             result.history)
