"""The training loop: :func:`run_epochs`, the one epoch skeleton every kind of training runs.

What is trained on and how it is scored is an :class:`Objective` (single-task classification:
:class:`uebench.train.classification.ClassificationObjective` behind :func:`~uebench.train.fit`;
multi-task: :class:`uebench.multitask.train.MultiTaskObjective` behind ``fit_multitask``). The loop
owns what they share: the optimiser and schedule, resume from the run directory's checkpoint
(:mod:`uebench.train.checkpoint`) or in memory (:class:`FitState`), precision, the optimiser step,
per-step hooks, evaluation and callbacks, the checkpoint after every epoch and the time budget.

One seed drives data order, augmentation and dropout: epoch ``e`` draws from generators derived
from ``(rt.seed, e)``, so an interrupted run resumed from its epoch checkpoint ends with exactly
the weights of an uninterrupted one on CPU.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from uebench.config import TrainCfg
from uebench.runtime import Runtime, autocast, check_budget, derive_seed
from uebench.train.checkpoint import resume, write_checkpoint
from uebench.train.optim import make_optimizer, make_scheduler
from uebench.utils.progress import bar


@dataclass(frozen=True)
class BatchInfo:
    """Where a training batch sits, for a ``batch_loss`` that needs it (defenses, attacks).

    ``generator(*offsets)`` gives the batch's own seeded random stream, derived from the run's seed
    and the global step: a resumed run draws exactly what an uninterrupted one draws.
    """

    epoch: int  # 1-based
    step: int  # global optimiser step this batch is for (1-based)
    rt: Runtime

    def generator(self, *offsets: int) -> torch.Generator:
        return self.rt.generator(3, self.step, *offsets)


# (model, x, y, info) -> (loss to backpropagate, logits for the train accuracy)
BatchLoss = Callable[
    [nn.Module, torch.Tensor, torch.Tensor, BatchInfo], tuple[torch.Tensor, torch.Tensor]
]


@dataclass
class FitState:
    """Optimiser, schedule and finished epochs carried across training calls *in memory*.

    An alternating attack (EM, REM-apbench, multi-task EM) trains its surrogate one "epoch" per
    round with other work in between; passing the same ``FitState`` to every call continues the
    optimiser (its momentum) and the schedule without a round trip through a checkpoint file.
    """

    opt: torch.optim.Optimizer | None = None
    sched: Any = None
    epoch: int = 0
    step: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)


class StepHook(Protocol):
    """Per-optimiser-step hook (e.g. trajectory recording). Hooks only read the model.

    ``on_step`` runs after every optimiser step (``step`` = global step, 1-based); ``on_epoch_end``
    right before the epoch's checkpoint is written; ``on_resume`` once, first, when training
    resumes from a checkpoint (with that checkpoint's epoch and global step), so a hook can drop
    anything it recorded after the checkpoint.
    """

    def on_step(self, model: nn.Module, step: int, epoch: int) -> None: ...

    def on_epoch_end(self, epoch: int, step: int) -> None: ...

    def on_resume(self, epoch: int, step: int) -> None: ...


class Objective(Protocol):
    """What one kind of training plugs into :func:`run_epochs`.

    ``batches(gen)`` yields ``(x, target)`` for one epoch in the order ``gen`` draws (``len``: how
    many); ``loss`` gives ``(loss to backpropagate, outputs)`` for a batch (inside the precision's
    autocast); ``record`` adds a finished step to the epoch's running train metrics and
    ``train_row`` returns them (and starts the next epoch's); ``test_row`` evaluates the model on
    the objective's test split (``{}`` without one); ``context`` is what per-epoch callbacks see.
    """

    def __len__(self) -> int: ...

    def batches(self, gen: torch.Generator) -> Iterable[tuple[torch.Tensor, Any]]: ...

    def loss(self, model: nn.Module, x: torch.Tensor, target: Any,
             info: BatchInfo) -> tuple[torch.Tensor, Any]: ...

    def record(self, loss: torch.Tensor, outputs: Any, target: Any, n: int) -> None: ...

    def train_row(self) -> dict[str, float]: ...

    def test_row(self, model: nn.Module, precision: str,
                 channels_last: bool) -> dict[str, float]: ...

    def context(self, epoch: int, model: nn.Module, row: dict[str, Any], rt: Runtime,
                precision: str) -> Any: ...


def resolve_precision(cfg: TrainCfg, device: torch.device) -> tuple[str, bool]:
    """(precision, channels_last) actually used.

    CUDA defaults to bf16 autocast + channels_last. On CPU the default is fp32/NCHW, whatever
    the CPU: a run's identity holds the requested precision ("auto"), so picking bf16 by CPU
    flags would give one key different numbers on different machines. Speed differs by CPU
    (benchmarks/README.md, section 1): without bf16 instructions (AMD EPYC Zen 3) channels_last +
    bf16 trained ResNet-18 ~10x *slower* than fp32; with AMX-BF16 (Intel Xeon) it was faster.
    There, set ``precision=bf16 channels_last=on`` explicitly (a different run identity).
    """
    precision = cfg.precision
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if cfg.channels_last == "auto":
        channels_last = device.type == "cuda"
    else:
        channels_last = cfg.channels_last == "on"
    return precision, channels_last


@dataclass
class _Progress:
    """The optimiser, schedule, rows and counters a loop starts from (or continues)."""

    opt: torch.optim.Optimizer
    sched: Any
    rows: list[dict[str, Any]]
    epoch: int
    step: int


def _start(model: nn.Module, cfg: TrainCfg, steps_per_epoch: int, run_dir: Path | None,
           run_id: str | None, state: FitState | None,
           step_hooks: Sequence[StepHook]) -> _Progress:
    """Continue ``state`` in memory, resume ``run_dir``'s checkpoint, or start fresh."""
    if state is not None and state.opt is not None:
        return _Progress(state.opt, state.sched, state.rows, state.epoch, state.step)
    opt = make_optimizer(model, cfg)
    sched = make_scheduler(opt, cfg)
    rows, start = resume(run_dir, model, opt, sched, run_id)
    step = start * steps_per_epoch  # global optimiser steps so far (every epoch has as many)
    if start:
        for hook in step_hooks:
            hook.on_resume(start, step)
    if state is not None:
        # the epoch and step counters too: a call that resumes a checkpoint already at
        # cfg.epochs (an attack killed after its surrogate's epoch, before the round was saved)
        # trains nothing, and the next call must continue from that epoch, not from 0
        state.opt, state.sched, state.rows = opt, sched, rows
        state.epoch, state.step = start, step
    return _Progress(opt, sched, rows, start, step)


def run_epochs(
    model: nn.Module,
    objective: Objective,
    *,
    cfg: TrainCfg,
    rt: Runtime,
    callbacks: Sequence[Callable[[Any], Mapping[str, Any] | None]] = (),
    run_dir: Path | None = None,
    desc: str = "train",
    step_hooks: Sequence[StepHook] = (),
    state: FitState | None = None,
    run_id: str | None = None,
) -> list[dict[str, Any]]:
    """Train ``model`` in place on ``objective`` up to ``cfg.epochs``; one metrics row per epoch.

    Args:
        model: the model (images in [0, 1], normalization inside).
        objective: the data, loss, train metrics, evaluation and callback context.
        cfg: optimisation settings.
        rt: device, seed and progress switch.
        callbacks: per-epoch hooks called with ``objective.context(...)``; their dicts join the row.
        run_dir: if given, ``metrics.jsonl`` and ``checkpoint.pt`` are written there after every
            epoch (atomically) and an existing checkpoint is resumed.
        desc: progress-bar label.
        step_hooks: per-optimiser-step hooks (:class:`StepHook`).
        state: an in-memory continuation (:class:`FitState`): the optimiser, schedule and epoch
            of the previous call with the same ``state`` are continued (``cfg.epochs`` is then
            the new total); on the first call it is filled.
        run_id: stored in every checkpoint; a checkpoint with another id is never resumed.

    Returns:
        Rows: ``epoch, lr``, the objective's train and test entries, ``train_seconds``, the
        callbacks' entries, ``seconds``.
    """
    precision, channels_last = resolve_precision(cfg, rt.device)
    model.to(rt.device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    at = _start(model, cfg, len(objective), run_dir, run_id, state, step_hooks)
    for epoch in range(at.epoch + 1, cfg.epochs + 1):
        t0 = time.perf_counter()
        lr = at.opt.param_groups[0]["lr"]
        torch.manual_seed(derive_seed(rt.seed, 2, epoch))  # dropout etc. in this epoch
        pbar = bar(len(objective), enabled=rt.show_progress, desc=f"{desc} {epoch}/{cfg.epochs}",
                   unit="batch")
        model.train()  # for the whole epoch: evaluation and callbacks of the last one used eval
        for xb, target in objective.batches(rt.generator(1, epoch)):
            at.step += 1
            _step(model, objective, at.opt, cfg, xb, target, BatchInfo(epoch, at.step, rt),
                  precision, channels_last)
            for hook in step_hooks:
                hook.on_step(model, at.step, epoch)
            pbar.update(1)
        pbar.close()
        at.sched.step()
        row: dict[str, Any] = {"epoch": epoch, "lr": lr, **objective.train_row()}
        row.update(objective.test_row(model, precision, channels_last))
        row["train_seconds"] = time.perf_counter() - t0
        ctx = objective.context(epoch, model, row, rt, precision)
        for cb in callbacks:
            row.update(cb(ctx) or {})
        model.train()
        row["seconds"] = time.perf_counter() - t0
        at.rows.append(row)
        _log_epoch(row, cfg.epochs, rt)
        for hook in step_hooks:
            hook.on_epoch_end(epoch, at.step)
        if run_dir is not None:
            write_checkpoint(Path(run_dir), model, at.opt, at.sched, epoch, at.rows,
                             snapshot=cfg.snapshots, run_id=run_id)
        if state is not None:
            state.epoch, state.step = epoch, at.step
        if run_dir is not None and epoch < cfg.epochs:  # a resumable point: stop here if
            # the next epoch would end past the time budget (uebench.runtime.time_budget)
            check_budget(row["seconds"], f"epoch {epoch}/{cfg.epochs} of {desc}")
    return at.rows


def _step(model: nn.Module, objective: Objective, opt: torch.optim.Optimizer, cfg: TrainCfg,
          xb: torch.Tensor, target: Any, info: BatchInfo, precision: str,
          channels_last: bool) -> None:
    """One optimiser step on one batch (the model in train mode); no host sync (metrics stay on
    the device)."""
    if channels_last:
        xb = xb.contiguous(memory_format=torch.channels_last)
    with autocast(info.rt.device, precision):
        loss, outputs = objective.loss(model, xb, target, info)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    opt.step()
    objective.record(loss.detach(), outputs, target, int(xb.shape[0]))


def _log_epoch(row: Mapping[str, Any], epochs: int, rt: Runtime) -> None:
    if not rt.show_progress:
        return
    parts = [f"epoch {row['epoch']:>3}/{epochs}", f"loss {row['train_loss']:.4f}"]
    if "train_acc" in row:
        parts.append(f"acc {row['train_acc']:.4f}")
    if "test_acc" in row:
        parts.append(f"test_acc {row['test_acc']:.4f}")
    parts.append(f"{row['seconds']:.1f}s")
    print("  ".join(parts), file=sys.stderr, flush=True)
