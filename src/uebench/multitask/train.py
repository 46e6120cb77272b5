"""Multi-task training: ``fit_multitask`` (weighted loss, per-epoch per-task metrics, resume).

Built on :func:`uebench.train.optim.make_optimizer` / ``make_scheduler`` and a
:class:`~uebench.config.TrainCfg` (``augment`` must be ``none`` or ``flip``). Randomness follows
:func:`uebench.train.fit`: epoch ``e`` draws its order and flips from ``rt.generator(1, e)`` and
seeds dropout with ``derive_seed(rt.seed, 2, e)``, so a run is reproducible on CPU.
Rows: ``epoch, lr, train_loss, train/<task>/loss, train/<task>/<metric>`` (running, train mode),
``test_loss, test/<task>/loss, test/<task>/<metric>`` (eval mode) when a test split is given,
callback keys, ``seconds``. With a ``run_dir`` the rows and checkpoints go to the files of
:func:`uebench.train.fit` and an interrupted run resumes with the same weights it would have had.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from uebench.config import TrainCfg
from uebench.errors import ConfigError, UebenchError
from uebench.multitask.dataset import MultiTaskSet
from uebench.multitask.loader import MultiTaskLoader
from uebench.multitask.losses import TASK_LOSSES, multitask_loss
from uebench.multitask.metrics import TASK_METRICS, MetricAccumulator
from uebench.multitask.tasks import TaskSpec
from uebench.runtime import Runtime, autocast, derive_seed

# the run-directory checkpoint of train.fit (same files, same resume rules)
from uebench.train.loop import FitState, _checkpoint, _resume, resolve_precision
from uebench.train.optim import make_optimizer, make_scheduler
from uebench.utils.progress import bar


@dataclass
class MultiTaskEpoch:
    """What a per-epoch callback sees after epoch ``epoch`` (1-based): the row so far."""

    epoch: int
    model: nn.Module
    row: dict[str, Any]
    train: MultiTaskSet
    cfg: TrainCfg
    rt: Runtime


EpochCallback = Callable[[MultiTaskEpoch], Mapping[str, Any] | None]


def check_task_specs(tasks: Mapping[str, TaskSpec]) -> None:
    """Raise unless every task's loss and metrics exist and accept its kind."""
    for task, spec in tasks.items():
        for registry, name in [(TASK_LOSSES, spec.loss)] + [(TASK_METRICS, m)
                                                             for m in spec.metrics]:
            kinds = registry.meta(name)["kinds"]
            if spec.kind not in kinds:
                raise UebenchError(
                    f"task '{task}' ({spec.kind}): {registry.kind} '{name}' is for {kinds}"
                )


class _Running:
    """Sample-weighted running means of the total and per-task losses, summed on the device.

    Keys: ``total_key`` and ``task_key.format(task)``.
    """

    def __init__(self, total_key: str, task_key: str) -> None:
        self.total_key, self.task_key = total_key, task_key
        self.sums: dict[str, torch.Tensor] = {}
        self.seen = 0

    def add(self, total: torch.Tensor, per_task: Mapping[str, torch.Tensor], n: int) -> None:
        for key, value in [(self.total_key, total)] + [(self.task_key.format(t), v)
                                                       for t, v in per_task.items()]:
            part = value.detach().double() * n
            self.sums[key] = self.sums[key] + part if key in self.sums else part
        self.seen += n

    def means(self) -> dict[str, float]:
        return {k: float(v) / max(self.seen, 1) for k, v in self.sums.items()}


@torch.no_grad()
def evaluate_multitask(
    model: nn.Module, data: MultiTaskSet, *, weights: Mapping[str, float] | None = None,
    batch_size: int = 256, device: torch.device | str | None = None, precision: str = "fp32",
    images: torch.Tensor | None = None,
) -> dict[str, float]:
    """Eval-mode ``loss``, ``<task>/loss`` (batch-size-weighted means of batch losses) and
    ``<task>/<metric>`` (exact over the split) of a multi-task model on ``data`` (or on float
    ``images`` in [0, 1] with ``data``'s targets)."""
    check_task_specs(data.tasks)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    running, metrics = _Running("loss", "{}/loss"), MetricAccumulator(data.tasks)
    loader = MultiTaskLoader(data, batch_size=batch_size, device=device, images=images)
    for xb, tb in loader.batches():
        with autocast(device, precision):
            outputs = model(xb)
        total, per_task = multitask_loss(outputs, tb, data.tasks, weights)
        running.add(total, per_task, int(xb.shape[0]))
        metrics.update(outputs, tb)
    model.train(was_training)
    return {**running.means(), **metrics.compute()}


def fit_multitask(
    model: nn.Module, train: MultiTaskSet, *, cfg: TrainCfg, rt: Runtime,
    test: MultiTaskSet | None = None, weights: Mapping[str, float] | None = None,
    callbacks: Sequence[EpochCallback] = (), desc: str = "train", run_dir: Path | None = None,
    run_id: str | None = None, state: FitState | None = None, images: torch.Tensor | None = None,
) -> list[dict[str, Any]]:
    """Train a multi-task model in place on ``sum_t w_t L_t``; one metrics row per epoch.

    Args:
        model: ``forward(x) -> {task: output}`` on images in [0, 1] (normalization inside).
        train: the training split.
        cfg: optimisation settings (``augment``: ``none`` or ``flip``).
        rt: device, seed, progress switch.
        test: optional evaluation split (same tasks).
        weights: ``{task: w_t}`` (None = all tasks, weight 1); see :func:`multitask_loss`.
        callbacks: per-epoch hooks; their dicts join the row.
        desc: progress-bar label.
        run_dir: write ``metrics.jsonl`` and ``checkpoint.pt`` there after every epoch (as
            :func:`uebench.train.fit`, same files) and resume from an existing checkpoint.
        run_id: stored in every checkpoint; a checkpoint with another id is never resumed.
        state: an in-memory continuation (:class:`~uebench.train.loop.FitState`), as in
            :func:`uebench.train.fit`: optimiser, schedule and epoch carry over between calls
            (``cfg.epochs`` is then the new total). A poison search uses it.
        images: float images in [0, 1] replacing ``train.x`` (e.g. ``x + delta`` during a
            poison search, before quantization).
    """
    if cfg.augment not in ("none", "flip"):
        raise ConfigError(f"multi-task training supports train.augment=none|flip, got "
                          f"'{cfg.augment}' (crops would misalign dense targets)")
    check_task_specs(train.tasks)
    model.to(rt.device)
    precision, channels_last = resolve_precision(cfg, rt.device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    loader = MultiTaskLoader(train, batch_size=cfg.batch_size, device=rt.device, shuffle=True,
                             drop_last=cfg.drop_last, flip=cfg.augment == "flip", images=images)
    opt, sched, rows, start = _optimiser(model, cfg, run_dir, run_id, state)
    for epoch in range(start + 1, cfg.epochs + 1):
        t0, lr = time.perf_counter(), opt.param_groups[0]["lr"]
        torch.manual_seed(derive_seed(rt.seed, 2, epoch))  # dropout etc. in this epoch
        pbar = bar(len(loader), enabled=rt.show_progress, desc=f"{desc} {epoch}/{cfg.epochs}")
        row: dict[str, Any] = {"epoch": epoch, "lr": lr}
        row.update(_train_epoch(model, loader, opt, train.tasks, weights, cfg,
                                rt.generator(1, epoch), pbar))
        pbar.close()
        sched.step()
        if test is not None:
            ev = evaluate_multitask(model, test, weights=weights, batch_size=cfg.eval_batch_size,
                                    device=rt.device, precision=precision)
            row.update({("test_loss" if k == "loss" else f"test/{k}"): v for k, v in ev.items()})
        for cb in callbacks:
            row.update(cb(MultiTaskEpoch(epoch, model, row, train, cfg, rt)) or {})
        model.train()
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
        if rt.show_progress:
            print(f"{desc} epoch {epoch}/{cfg.epochs}  loss {row['train_loss']:.4f}  "
                  f"{row['seconds']:.1f}s", file=sys.stderr, flush=True)
        if run_dir is not None:
            _checkpoint(Path(run_dir), model, opt, sched, epoch, rows, snapshot=cfg.snapshots,
                        run_id=run_id)
        if state is not None:
            state.epoch = epoch
    return rows


def _optimiser(model: nn.Module, cfg: TrainCfg, run_dir: Path | None, run_id: str | None,
               state: FitState | None) -> tuple[torch.optim.Optimizer, Any, list, int]:
    """(optimiser, schedule, rows so far, finished epochs): continued from ``state`` in memory,
    resumed from ``run_dir/checkpoint.pt`` (train.loop's resume), or fresh."""
    if state is not None and state.opt is not None:
        return state.opt, state.sched, state.rows, state.epoch
    opt = make_optimizer(model, cfg)
    sched = make_scheduler(opt, cfg)
    rows, start = _resume(Path(run_dir) if run_dir is not None else None, model, opt, sched,
                          run_id)
    if state is not None:
        state.opt, state.sched, state.rows, state.epoch = opt, sched, rows, start
    return opt, sched, rows, start


def _train_epoch(model: nn.Module, loader: MultiTaskLoader, opt: torch.optim.Optimizer,
                 tasks: Mapping[str, TaskSpec], weights: Mapping[str, float] | None,
                 cfg: TrainCfg, gen: torch.Generator, pbar: Any) -> dict[str, float]:
    """One pass of optimiser steps; running train-mode losses and metrics."""
    precision, channels_last = resolve_precision(cfg, loader.device)
    model.train()
    running, metrics = _Running("train_loss", "train/{}/loss"), MetricAccumulator(tasks)
    for xb, tb in loader.batches(gen):
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with autocast(loader.device, precision):
            outputs = model(xb)
        loss, per_task = multitask_loss(outputs, tb, tasks, weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        running.add(loss, per_task, int(xb.shape[0]))
        metrics.update({t: o.detach() for t, o in outputs.items()}, tb)
        pbar.update(1)
    return {**running.means(), **{f"train/{k}": v for k, v in metrics.compute().items()}}
