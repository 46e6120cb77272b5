"""The training engine: ``fit()`` (SGD/Adam, schedules, per-epoch eval and callbacks, resume).

One seed drives data order, augmentation and dropout: epoch ``e`` draws from generators derived
from ``(rt.seed, e)``, so an interrupted run resumed from its epoch checkpoint ends with exactly
the weights of an uninterrupted one on CPU.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from uebench.config import TrainCfg
from uebench.data.loader import DeviceLoader
from uebench.errors import ConfigError, UebenchError
from uebench.runtime import Runtime, autocast, check_budget, derive_seed
from uebench.train import rundir
from uebench.train.optim import make_optimizer, make_scheduler
from uebench.train.rundir import snapshot_path
from uebench.utils.io import (
    atomic_torch_save,
    atomic_write_bytes,
    corrupt,
    safe_torch_load,
    write_jsonl,
)
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
    """Optimiser, schedule and finished epochs carried across ``fit`` calls *in memory*.

    An alternating attack (EM, REM-apbench) trains its surrogate one "epoch" per round with other
    work in between; passing the same ``FitState`` to every call continues the optimiser (its
    momentum) and the schedule without a round trip through a checkpoint file.
    """

    opt: torch.optim.Optimizer | None = None
    sched: Any = None
    epoch: int = 0
    step: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class EpochContext:
    """What a per-epoch callback sees after epoch ``epoch`` (1-based) finished training."""

    epoch: int
    model: nn.Module
    train_loss: (
        float  # running mean of the epoch's train-mode batch losses (the paper code's "origin")
    )
    train_acc: float
    x_train: (
        torch.Tensor
    )  # the training images fit() was given (uint8 or float), before augmentation
    y_train: torch.Tensor
    cfg: TrainCfg
    rt: Runtime
    precision: str
    batch_losses: list[float] = field(default_factory=list)  # the epoch's batch-mean losses
    batch_sizes: list[int] = field(default_factory=list)


class Callback(Protocol):
    """Per-epoch hook; the returned mapping is merged into the epoch's metrics row."""

    def __call__(self, ctx: EpochContext) -> Mapping[str, Any] | None: ...


class StepHook(Protocol):
    """Per-optimiser-step hook (e.g. trajectory recording). Hooks only read the model.

    ``on_step`` runs after every optimiser step (``step`` = global step, 1-based); ``on_epoch_end``
    right before the epoch's checkpoint is written; ``on_resume`` once, first, when ``fit`` resumes
    from a checkpoint (with that checkpoint's epoch and global step), so a hook can drop anything it
    recorded after the checkpoint.
    """

    def on_step(self, model: nn.Module, step: int, epoch: int) -> None: ...

    def on_epoch_end(self, epoch: int, step: int) -> None: ...

    def on_resume(self, epoch: int, step: int) -> None: ...


def resolve_precision(cfg: TrainCfg, device: torch.device) -> tuple[str, bool]:
    """(precision, channels_last) actually used.

    CUDA defaults to bf16 autocast + channels_last. On CPU the default is fp32/NCHW: on the
    development CPU (AMD EPYC Zen 3, AVX2, no AVX512-BF16) channels_last + bf16 trained ResNet-18
    ~10x *slower* than fp32 and LeNet-5 ~2x slower at equal accuracy (benchmarks/README.md).
    On CPUs with AVX512-BF16/AMX it can be faster: set ``precision=bf16 channels_last=on``.
    """
    precision = cfg.precision
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if cfg.channels_last == "auto":
        channels_last = device.type == "cuda"
    else:
        channels_last = cfg.channels_last == "on"
    return precision, channels_last


def cross_entropy(cfg: TrainCfg) -> BatchLoss:
    def loss_fn(
        model: nn.Module, x: torch.Tensor, y: torch.Tensor, info: BatchInfo
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(x)
        return F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing), logits

    return loss_fn


@torch.no_grad()
def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int = 1024,
    device: torch.device | str | None = None,
    precision: str = "fp32",
    channels_last: bool = False,
) -> dict[str, float]:
    """Eval-mode mean cross-entropy and accuracy (a fraction in [0, 1]) over ``(x, y)``."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    loader = DeviceLoader(x, y, batch_size=batch_size, shuffle=False, device=device)
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.long)
    for xb, yb in loader:
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            logits = model(xb)
        loss_sum += F.cross_entropy(logits.float(), yb, reduction="sum").double()
        correct += (logits.argmax(1) == yb).sum()
    model.train(was_training)
    n = max(int(y.shape[0]), 1)
    return {"loss": float(loss_sum) / n, "acc": float(correct) / n}


def fit(
    model: nn.Module,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    *,
    cfg: TrainCfg,
    rt: Runtime,
    x_test: torch.Tensor | None = None,
    y_test: torch.Tensor | None = None,
    callbacks: Sequence[Callback] = (),
    batch_loss: BatchLoss | None = None,
    run_dir: Path | None = None,
    desc: str = "train",
    step_hooks: Sequence[StepHook] = (),
    state: FitState | None = None,
    run_id: str | None = None,
) -> list[dict[str, Any]]:
    """Train ``model`` in place and return one metrics row per epoch.

    Args:
        model: a model taking images in [0, 1] (normalization inside).
        x_train: training images, uint8 (0..255) or float in [0, 1], N x C x H x W.
        y_train: int64 labels (N,).
        cfg: optimisation settings.
        rt: device, seed and progress switch.
        x_test, y_test: optional evaluation split (test_loss / test_acc per epoch).
        callbacks: per-epoch hooks (e.g. the SAL measurement); their dicts join the row.
        batch_loss: ``(model, x, y, info) -> (loss, logits)`` replacing plain cross-entropy
            (defenses, attacks); ``info`` is a :class:`BatchInfo`.
        run_dir: if given, ``metrics.jsonl`` and ``checkpoint.pt`` are written there after every
            epoch (atomically) and an existing checkpoint is resumed.
        desc: progress-bar label.
        step_hooks: per-optimiser-step hooks (:class:`StepHook`).
        state: an in-memory continuation (:class:`FitState`): the optimiser, schedule and epoch
            of the previous call with the same ``state`` are continued (``cfg.epochs`` is then
            the new total); on the first call it is filled.
        run_id: stored in every checkpoint; a checkpoint with another id is never resumed.

    Returns:
        Rows with ``epoch, lr, train_loss, train_acc, [test_loss, test_acc], seconds`` + callbacks.
    """
    device = rt.device
    precision, channels_last = resolve_precision(cfg, device)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    loss_fn = batch_loss or cross_entropy(cfg)
    loader = DeviceLoader(
        x_train,
        y_train,
        batch_size=cfg.batch_size,
        shuffle=True,
        drop_last=cfg.drop_last,
        augment=cfg.augment,
        device=device,
        padding=cfg.crop_padding,
    )
    if state is not None and state.opt is not None:  # continue in memory
        opt, sched, rows, start, step = state.opt, state.sched, state.rows, state.epoch, state.step
    else:
        opt = make_optimizer(model, cfg)
        sched = make_scheduler(opt, cfg)
        rows, start = _resume(run_dir, model, opt, sched, run_id)
        step = start * len(loader)  # global optimiser steps so far (every epoch has len(loader))
        if start:
            for hook in step_hooks:
                hook.on_resume(start, step)
    if state is not None:
        # the epoch and step counters too: a call that resumes a checkpoint already at
        # cfg.epochs (an attack killed after its surrogate's epoch, before the round was saved)
        # trains nothing, and the next call must continue from that epoch, not from 0
        state.opt, state.sched, state.rows = opt, sched, rows
        state.epoch, state.step = start, step
    for epoch in range(start + 1, cfg.epochs + 1):
        t0 = time.perf_counter()
        lr = opt.param_groups[0]["lr"]
        torch.manual_seed(derive_seed(rt.seed, 2, epoch))  # dropout etc. in this epoch
        pbar = bar(
            len(loader), enabled=rt.show_progress, desc=f"{desc} {epoch}/{cfg.epochs}", unit="batch"
        )
        stats = _train_epoch(
            model, loader.batches(rt.generator(1, epoch)), opt, loss_fn, cfg,
            device=device, precision=precision, channels_last=channels_last,
            step_hooks=step_hooks, step=step, epoch=epoch, pbar=pbar, rt=rt,
        )
        pbar.close()
        step = stats.step
        sched.step()
        row: dict[str, Any] = {"epoch": epoch, "lr": lr, **stats.row()}
        if x_test is not None and y_test is not None:
            ev = evaluate(model, x_test, y_test, batch_size=cfg.eval_batch_size, device=device,
                          precision=precision, channels_last=channels_last)
            row["test_loss"], row["test_acc"] = ev["loss"], ev["acc"]
        row["train_seconds"] = time.perf_counter() - t0
        ctx = EpochContext(epoch, model, row["train_loss"], row["train_acc"], x_train, y_train,
                           cfg, rt, precision, stats.batch_means, stats.batch_sizes)
        for cb in callbacks:
            extra = cb(ctx)
            if extra:
                row.update(extra)
        model.train()
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
        _log_epoch(row, cfg.epochs, rt)
        for hook in step_hooks:
            hook.on_epoch_end(epoch, step)
        if run_dir is not None:
            _checkpoint(run_dir, model, opt, sched, epoch, rows, snapshot=cfg.snapshots,
                        run_id=run_id)
        if state is not None:
            state.epoch, state.step = epoch, step
        if run_dir is not None and epoch < cfg.epochs:  # a resumable point: stop here if
            # the next epoch would end past the time budget (uebench.runtime.time_budget)
            check_budget(row["seconds"], f"epoch {epoch}/{cfg.epochs} of {desc}")
    return rows


@dataclass
class EpochStats:
    """What one pass over the training batches measured (accumulated on the device)."""

    loss_sum: torch.Tensor
    correct: torch.Tensor
    seen: int
    batch_means: list[float]
    batch_sizes: list[int]
    step: int

    def row(self) -> dict[str, float]:
        n = max(self.seen, 1)
        return {
            "train_loss": float(self.loss_sum) / n,
            "train_acc": float(self.correct) / n,
            "train_loss_official": (official_running_loss(self.batch_means, self.batch_sizes)
                                    if self.batch_means else float("nan")),
        }


def official_running_loss(batch_means: Sequence[float], batch_sizes: Sequence[int]) -> float:
    """The official origin of an epoch: the per-image running mean of the training loss.

    The paper code's ``train()`` returns ``train_loss / total * targets.size(0)``, i.e. (sum of
    the batch-mean losses) × (size of the last batch) / (number of images). Under its loader's
    ``drop_last=True`` every batch has the same size and that *is* the per-image running mean.
    With a short last batch (uebench trains with ``drop_last=False`` by default) the same formula
    would scale the running mean by (batches × last-batch size / images) — 0.31 at 50,000 images
    and batch 256 — a loss-proportional offset on every layer's SAL. So the origin is computed as
    what the formula means, the size-weighted mean of the batch means, which equals the paper's
    value whenever the paper's loader could have produced the batches (all equal sizes) and
    never deflates (docs/sal.md, "The official origin").

    Args:
        batch_means: the mean loss of every training batch of the epoch, in order.
        batch_sizes: the number of images of every batch, in the same order.
    """
    if len(batch_means) != len(batch_sizes) or not batch_sizes:
        raise ConfigError(f"need one size per batch mean and at least one batch, got "
                          f"{len(batch_means)} means and {len(batch_sizes)} sizes")
    total = sum(int(n) for n in batch_sizes)
    if total <= 0 or any(int(n) <= 0 for n in batch_sizes):
        raise ConfigError(f"batch sizes must be positive, got {list(batch_sizes)}")
    return float(sum(float(m) * int(n) for m, n in zip(batch_means, batch_sizes))) / total


def paper_formula_loss(batch_means: Sequence[float], batch_sizes: Sequence[int]) -> float:
    """The paper code's formula as written, (Σ batch means) × (last batch size) / images: kept to
    show what it gives with a short last batch (the deflation :func:`official_running_loss`
    avoids); identical to it when every batch has the same size."""
    total = sum(int(n) for n in batch_sizes)
    return float(sum(float(m) for m in batch_means)) * int(batch_sizes[-1]) / total


def _train_epoch(
    model: nn.Module, batches: Any, opt: torch.optim.Optimizer, loss_fn: BatchLoss,
    cfg: TrainCfg, *, device: torch.device, precision: str, channels_last: bool,
    step_hooks: Sequence[StepHook], step: int, epoch: int, pbar: Any, rt: Runtime,
) -> EpochStats:
    """One pass of optimiser steps; no per-batch host sync (sums stay on the device)."""
    model.train()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.long)
    means: list[torch.Tensor] = []
    sizes: list[int] = []
    for xb, yb in batches:
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            loss, logits = loss_fn(model, xb, yb, BatchInfo(epoch, step + 1, rt))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        for hook in step_hooks:
            hook.on_step(model, step, epoch)
        means.append(loss.detach().double())
        sizes.append(int(yb.shape[0]))
        loss_sum += means[-1] * sizes[-1]
        correct += (logits.detach().argmax(1) == yb).sum()
        pbar.update(1)
    batch_means = torch.stack(means).tolist() if means else []
    return EpochStats(loss_sum, correct, sum(sizes), batch_means, sizes, step)


def _log_epoch(row: Mapping[str, Any], epochs: int, rt: Runtime) -> None:
    if not rt.show_progress:
        return
    parts = [
        f"epoch {row['epoch']:>3}/{epochs}",
        f"loss {row['train_loss']:.4f}",
        f"acc {row['train_acc']:.4f}",
    ]
    if "test_acc" in row:
        parts.append(f"test_acc {row['test_acc']:.4f}")
    parts.append(f"{row['seconds']:.1f}s")
    print("  ".join(parts), file=sys.stderr, flush=True)


def _checkpoint(
    run_dir: Path,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    sched: Any,
    epoch: int,
    rows: list[dict[str, Any]],
    *,
    snapshot: bool = False,
    run_id: str | None = None,
) -> None:
    run_dir = Path(run_dir)
    if snapshot:  # before metrics: a listed epoch always has its snapshot
        save_snapshot(run_dir, epoch, model)
    # metrics first, then the checkpoint: a crash between the two leaves metrics ahead of the
    # checkpoint, and _resume trims them back to the checkpoint's epoch.
    write_jsonl(run_dir / rundir.METRICS, rows)
    state = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "epoch": epoch,
        "run_id": run_id,
    }
    atomic_torch_save(state, run_dir / rundir.CHECKPOINT)


def save_snapshot(run_dir: Path, epoch: int, model: nn.Module) -> Path:
    """The model's state (weights and buffers, e.g. BatchNorm statistics) after ``epoch``."""
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    path = snapshot_path(run_dir, epoch)
    atomic_write_bytes(path, save(state, metadata={"epoch": str(epoch)}))
    return path


def load_snapshot(run_dir: Path, epoch: int) -> dict[str, torch.Tensor]:
    """A stored per-epoch state dict (safetensors: no code can run on load)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = snapshot_path(run_dir, epoch)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise corrupt(path, str(exc).splitlines()[0][:100]) from None


def _resume(
    run_dir: Path | None, model: nn.Module, opt: torch.optim.Optimizer, sched: Any,
    run_id: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    if run_dir is None or not (Path(run_dir) / rundir.CHECKPOINT).exists():
        return [], 0
    path = Path(run_dir) / rundir.CHECKPOINT
    state = safe_torch_load(path, map_location=next(model.parameters()).device)
    needed = {"model", "optimizer", "scheduler", "epoch"}
    if not isinstance(state, dict) or not needed <= set(state):
        raise corrupt(path, "not a uebench checkpoint")
    if run_id is not None and state.get("run_id") not in (None, run_id):
        raise UebenchError(
            f"{path} belongs to a run with another config (run id {state.get('run_id')}, this "
            f"run {run_id}); it is never resumed under other settings: delete it, or use "
            "another output directory")
    try:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise corrupt(path, f"does not fit this model: {str(exc).splitlines()[0][:100]}") from None
    epoch = int(state["epoch"])
    rows = rundir.read_metrics(run_dir, missing_ok=True)
    metrics = Path(run_dir) / rundir.METRICS
    if any(not isinstance(r.get("epoch"), int) for r in rows):
        raise corrupt(metrics, "a row has no epoch number")
    rows = [r for r in rows if r["epoch"] <= epoch]
    if [r["epoch"] for r in rows] != list(range(1, epoch + 1)):
        raise corrupt(metrics,
                      f"its rows do not cover epochs 1..{epoch} of checkpoint.pt",
                      fix="delete the run directory and re-run")
    return rows, epoch
