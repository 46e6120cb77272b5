"""The alternating min-min loop of error-minimizing noise, with a pluggable objective.

EM (:mod:`uebench.attacks.em`), APBench's REM (:mod:`uebench.attacks.rem`) and multi-task EM
(:mod:`uebench.multitask.em`) are one algorithm with different objectives. One *round*:

1. train the surrogate for ``train_steps`` batches of a seeded stream of the working set on
   ``clamp(x + delta, 0, 1)`` (one "epoch" of the task's training loop per round; the optimiser
   continues across rounds in memory, :class:`~uebench.train.loop.FitState`, and through the
   loop's checkpoint when a workdir makes the search resumable);
2. freeze it (eval mode) and update the noise (the task's update: sign-gradient *descent* on its
   per-sample loss, projected to the eps-ball and [0, 1]);
3. score the surrogate on the noisy working set and stop when the task says it fits.

A :class:`MinMinTask` supplies what differs: the surrogate, the round's training, the update, the
score and the stopping rule. This module owns the rounds, the seeded batch stream, resume from
``workdir`` (state after every round; a kill mid-round re-runs that round to the same result)
and the round bar.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from uebench.attacks.surrogate import RunState, sub_runtime
from uebench.config import TrainCfg
from uebench.runtime import Runtime
from uebench.train.loop import FitState
from uebench.utils.io import atomic_write_text
from uebench.utils.progress import bar


@dataclass(frozen=True)
class MinMinSpec:
    """Settings of the alternating min-min loop (shared with REM's ``apbench`` variant)."""

    eps: float
    steps: int
    step_size: float
    batch_size: int
    train_steps: int
    stop_acc: float
    max_rounds: int
    classwise: bool = False
    class_subset: float = 0.2
    random_start: bool = False
    # APBench's REM: a min-max PGD from a stored noise seeds every min-min update (0 steps = off)
    seed_eps: float = 0.0
    seed_steps: int = 0
    seed_step_size: float = 0.0


def surrogate_cfg(batch_size: int, rounds: int) -> TrainCfg:
    """EM's surrogate optimiser (configs/cifar10/resnet18.yaml); one fit epoch per round."""
    return TrainCfg(epochs=rounds, batch_size=batch_size, optimizer="sgd", lr=0.1, momentum=0.9,
                    weight_decay=5e-4, schedule="constant", augment="none", grad_clip=5.0)


def stream_indices(m: int, start: int, count: int, rt: Runtime, stream: int) -> torch.Tensor:
    """Positions ``[start, start + count)`` of an endless stream of seeded permutations of ``m``."""
    first, last = start // m, (start + count - 1) // m
    gens = (rt.generator(stream, 2, k) for k in range(first, last + 1))
    perms = [torch.randperm(m, generator=g) for g in gens]
    offset = start - first * m
    return torch.cat(perms)[offset : offset + count]


class MinMinTask(Protocol):
    """The objective of one min-min search (see the module docstring).

    ``size``: samples in the working set (the surrogate's batches are drawn from it);
    ``stream``: the search's seed stream; ``initial()``: the state before round 1 (``noise`` and,
    for REM's seeding, ``seed``); ``per_sample(noise)``: the working set's delta;
    ``fit_round``: train the surrogate on the working-set positions ``idx`` with ``images``;
    ``update``: the noise after one pass; ``score``: metrics of the surrogate on the noisy working
    set; ``fitted``: the stopping rule; ``postfix``: what the round bar shows; ``summary``: the
    last round's score as ``diagnostics.json`` reports it.
    """

    size: int
    stream: int

    def initial(self) -> dict[str, Any]: ...

    def surrogate(self) -> nn.Module: ...

    def per_sample(self, noise: torch.Tensor) -> torch.Tensor: ...

    def working_images(self) -> torch.Tensor: ...

    def fit_round(self, model: nn.Module, idx: torch.Tensor, images: torch.Tensor,
                  cfg: TrainCfg, rt: Runtime, run_dir: Path | None, state: FitState,
                  desc: str) -> list[dict[str, Any]]: ...

    def update(self, model: nn.Module, noise: torch.Tensor, seed: torch.Tensor | None,
               rnd: int) -> torch.Tensor: ...

    def score(self, model: nn.Module, images: torch.Tensor) -> dict[str, float]: ...

    def fitted(self, score: Mapping[str, float]) -> bool: ...

    def postfix(self, rows: list[dict[str, Any]], score: Mapping[str, float]) -> dict[str, str]: ...

    def summary(self, score: Mapping[str, float]) -> dict[str, float]: ...


@dataclass
class MinMinResult:
    """The final noise (as the task stores it: per sample, or per class), the surrogate, one
    score row per round, and whether the stopping rule was met."""

    noise: torch.Tensor
    surrogate: nn.Module
    history: list[dict[str, Any]]
    converged: bool


def run_min_min(task: MinMinTask, *, batch_size: int, train_steps: int, max_rounds: int,
                stop_acc: float, rt: Runtime, workdir: Path | None, name: str,
                config: Mapping[str, Any]) -> MinMinResult:
    """Rounds of surrogate training and noise updates until ``task.fitted`` or ``max_rounds``.

    ``config`` identifies the search in ``workdir/<name>`` (a workdir of another search is
    refused); leave ``max_rounds`` out of it so that raising it continues a finished search.
    """
    with RunState(workdir, name, dict(config)) as state:
        saved = state.load("state.pt", rt.device)
        if saved is None:
            state.remove("surrogate")  # a round-1 crash may have left a surrogate checkpoint
            saved = {**task.initial(), "round": 0, "done": False, "history": []}
        noise, seed, rnd, done = saved["noise"], saved.get("seed"), saved["round"], saved["done"]
        history = list(saved.get("history", []))
        if not history and "acc" in saved and rnd:  # a state file written before histories
            history = [{"round": rnd, "acc": saved["acc"]}]
        model = task.surrogate()
        xw = task.working_images()
        srt, sdir, fstate = sub_runtime(rt, task.stream, 1), state.store("surrogate"), FitState()
        pbar = bar(max_rounds, enabled=rt.show_progress, desc=name, unit="round", initial=rnd)
        while not done and rnd < max_rounds:
            rnd += 1
            chunk = train_steps * batch_size
            idx = stream_indices(task.size, (rnd - 1) * chunk, chunk, rt, task.stream)
            idx = idx.to(xw.device)
            noisy = (xw[idx] + task.per_sample(noise)[idx]).clamp(0, 1)
            rows = task.fit_round(model, idx, noisy, surrogate_cfg(batch_size, rnd), srt, sdir,
                                  fstate, f"{name} surrogate")
            model.eval()
            noise = task.update(model, noise, seed, rnd)
            score = task.score(model, (xw + task.per_sample(noise)).clamp(0, 1))
            history.append({"round": rnd, **score})
            done = task.fitted(score)
            state.save("state.pt", {"noise": noise, "seed": seed, "round": rnd, "done": done,
                                    "history": history})
            pbar.update(1)
            pbar.set_postfix(**task.postfix(rows, score))
        pbar.close()
        if workdir is not None:
            last = task.summary(history[-1]) if history else {}
            atomic_write_text(Path(workdir) / "diagnostics.json", json.dumps(
                {"rounds": rnd, "converged": bool(done), "stop_acc": stop_acc,
                 **{k: round(float(v), 4) for k, v in last.items()}}))
    return MinMinResult(noise, model, history, bool(done))
