"""Multi-task error-minimizing noise: EM whose objective is the sum of chosen tasks' losses.

EM (Huang et al., "Unlearnable Examples", ICLR 2021, arXiv 2101.04898) with a multi-task
surrogate, as the paper's multi-task and cross-task experiments use it (Ye et al., ICLR 2025,
arXiv:2509.08058, §3.4, Figs. 7-8: "EM (*) ... using the loss function of a specific task, All
... the sum of loss functions from all tasks"). Distance measure: linf, ``eps`` = 8/255. Images
float in [0, 1]; returns ``delta`` shaped like the images with ``x + delta`` in [0, 1].

One *round*, repeated ``max_rounds`` times or until the surrogate fits the noisy data:

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

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from uebench.attacks.em import stream_indices, surrogate_cfg
from uebench.attacks.surrogate import RunState, attack_precision, batched, pgd, sub_runtime
from uebench.errors import ConfigError
from uebench.multitask.dataset import MultiTaskSet
from uebench.multitask.losses import sample_loss
from uebench.multitask.model import build_multitask_model
from uebench.multitask.train import evaluate_multitask, fit_multitask
from uebench.poisons.budget import clamp_to_image
from uebench.runtime import Runtime, derive_seed
from uebench.train.loop import FitState
from uebench.utils.progress import bar

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


def _update(objective: SummedLoss, x: torch.Tensor, data: MultiTaskSet, delta: torch.Tensor, *,
            eps: float, step_size: float, steps: int, batch_size: int,
            rt: Runtime) -> torch.Tensor:
    """One PGD pass of ``steps`` descent steps over every sample (batch by batch)."""
    precision = attack_precision(x.device)
    targets = {t: v.to(x.device) for t, v in data.targets.items()}

    def craft(i: int, xb: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        objective.targets = {t: v[idx] for t, v in targets.items()}
        return pgd(objective, xb, delta[idx], lambda loss: loss, eps=eps, step_size=step_size,
                   steps=steps, precision=precision)

    index = torch.arange(x.shape[0], device=x.device)  # batched hands the indices as "labels"
    return batched(x, index, craft, batch_size=batch_size, store=None, rt=rt,
                   desc="noise update")[0]


def _surrogate(data: MultiTaskSet, x: torch.Tensor, rt: Runtime, backbone: str, width: float,
               decoder_channels: int) -> nn.Module:
    mean = x.mean(dim=(0, 2, 3)).tolist()
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist() if x.shape[0] > 1 else [0.5] * x.shape[1]
    torch.manual_seed(derive_seed(rt.seed, STREAM, 0))  # initial weights depend on the seed only
    c, h, w = data.image_shape
    model = build_multitask_model(data.tasks, backbone=backbone, in_channels=c, image_size=(h, w),
                                  width=width, decoder_channels=decoder_channels, mean=mean,
                                  std=std)
    return model.to(rt.device)


def _check(eps: float, steps: int, train_steps: int, max_rounds: int, batch_size: int) -> None:
    if not 0 < eps <= 1 or min(steps, train_steps, max_rounds, batch_size) < 1:
        raise ConfigError("multi-task EM needs 0 < eps <= 1 and steps, train_steps, max_rounds, "
                          f"batch_size >= 1; got {eps}, {steps}, {train_steps}, {max_rounds}, "
                          f"{batch_size}")


def _fitted(data: MultiTaskSet, ev: dict[str, float], stop_acc: float) -> bool:
    """EM's stopping rule, for classification objectives only (dense tasks never stop early)."""
    if any(spec.kind != "classification" for spec in data.tasks.values()):
        return False
    return all(ev[f"{t}/accuracy"] > stop_acc for t in data.tasks)


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
    with RunState(workdir, "mt-em", config) as state:
        saved = state.load("state.pt", rt.device) or {
            "noise": torch.zeros_like(x), "round": 0, "done": False, "history": []}
        if saved["round"] == 0:
            state.remove("surrogate")  # a round-1 crash may have left a surrogate checkpoint
        model = _surrogate(chosen, x, rt, surrogate, surrogate_width, decoder_channels)
        objective = SummedLoss(model, chosen)
        noise, rnd, done, history = (saved["noise"], saved["round"], saved["done"],
                                     list(saved["history"]))
        srt, sdir, fstate = sub_runtime(rt, STREAM, 1), state.store("surrogate"), FitState()
        pbar = bar(max_rounds, enabled=rt.show_progress, desc="mt-em", unit="round", initial=rnd)
        while not done and rnd < max_rounds:
            rnd += 1
            # EM's surrogate step: this round's batches of a seeded stream, on x + delta
            idx = stream_indices(len(chosen), (rnd - 1) * train_steps * b, train_steps * b, rt,
                                 STREAM).to(x.device)
            fit_multitask(model, chosen.subset(idx.cpu()), cfg=surrogate_cfg(b, rnd), rt=srt,
                          images=(x[idx] + noise[idx]).clamp(0, 1), state=fstate,
                          run_dir=sdir, desc="mt-em surrogate")
            noise = _update(objective.eval(), x, chosen, noise, eps=eps, step_size=step_size,
                            steps=steps, batch_size=b, rt=rt)
            ev = evaluate_multitask(model, chosen, images=(x + noise).clamp(0, 1),
                                    batch_size=b, precision=attack_precision(x.device))
            history.append({"round": rnd, **{f"noisy/{k}": v for k, v in ev.items()}})
            done = _fitted(chosen, ev, stop_acc)
            state.save("state.pt", {"noise": noise, "round": rnd, "done": done,
                                    "history": history})
            pbar.update(1)
            pbar.set_postfix(noisy_loss=f"{ev['loss']:.3f}")
        pbar.close()
    return MultiTaskEMResult(clamp_to_image(x, noise), model.eval(), history)
