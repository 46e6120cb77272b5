"""Single-task classification training: :func:`fit` and :func:`evaluate`.

:func:`fit` is :func:`uebench.train.loop.run_epochs` with a :class:`ClassificationObjective`:
images and labels on the device, cross-entropy (or a ``batch_loss`` a defense or attack gives),
running train loss and accuracy, the per-image running loss the official SAL origin uses, and
eval-mode test loss and accuracy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from uebench.config import TrainCfg
from uebench.data.loader import DeviceLoader
from uebench.errors import ConfigError
from uebench.runtime import Runtime, autocast
from uebench.train.loop import BatchInfo, BatchLoss, FitState, StepHook, run_epochs


@dataclass
class EpochContext:
    """What a per-epoch callback sees after epoch ``epoch`` (1-based) finished training."""

    epoch: int
    model: nn.Module
    # running mean of the epoch's train-mode batch losses (the paper code's "origin")
    train_loss: float
    train_acc: float
    # the training images fit() was given (uint8 or float), before augmentation
    x_train: torch.Tensor
    y_train: torch.Tensor
    cfg: TrainCfg
    rt: Runtime
    precision: str
    batch_losses: list[float] = field(default_factory=list)  # the epoch's batch-mean losses
    batch_sizes: list[int] = field(default_factory=list)


class Callback(Protocol):
    """Per-epoch hook; the returned mapping is merged into the epoch's metrics row."""

    def __call__(self, ctx: EpochContext) -> Mapping[str, Any] | None: ...


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


class ClassificationObjective:
    """Images and labels, a batch loss (cross-entropy by default), running train loss and
    accuracy (summed on the device) and eval-mode test loss/accuracy (see :func:`fit`)."""

    def __init__(self, x_train: torch.Tensor, y_train: torch.Tensor, *, cfg: TrainCfg,
                 device: torch.device, x_test: torch.Tensor | None = None,
                 y_test: torch.Tensor | None = None,
                 batch_loss: BatchLoss | None = None) -> None:
        self.x_train, self.y_train, self.cfg, self.device = x_train, y_train, cfg, device
        self.x_test, self.y_test = x_test, y_test
        self.loss_fn = batch_loss or cross_entropy(cfg)
        self.loader = DeviceLoader(x_train, y_train, batch_size=cfg.batch_size, shuffle=True,
                                   drop_last=cfg.drop_last, augment=cfg.augment, device=device,
                                   padding=cfg.crop_padding)
        self._reset()

    def _reset(self) -> None:
        self.loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        self.correct = torch.zeros((), device=self.device, dtype=torch.long)
        self.means: list[torch.Tensor] = []
        self.sizes: list[int] = []
        # the last finished epoch's batch-mean losses and batch sizes (EpochContext)
        self.batch_means: list[float] = []
        self.batch_sizes: list[int] = []

    def __len__(self) -> int:
        return len(self.loader)

    def batches(self, gen: torch.Generator) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        return self.loader.batches(gen)

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             info: BatchInfo) -> tuple[torch.Tensor, torch.Tensor]:
        return self.loss_fn(model, x, y, info)

    def record(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor, n: int) -> None:
        self.means.append(loss.double())
        self.sizes.append(n)
        self.loss_sum += self.means[-1] * n
        self.correct += (logits.detach().argmax(1) == y).sum()

    def train_row(self) -> dict[str, float]:
        seen = max(sum(self.sizes), 1)
        means = torch.stack(self.means).tolist() if self.means else []
        row = {"train_loss": float(self.loss_sum) / seen, "train_acc": float(self.correct) / seen,
               "train_loss_official": (official_running_loss(means, self.sizes)
                                       if means else float("nan"))}
        sizes = self.sizes
        self._reset()
        self.batch_means, self.batch_sizes = means, sizes  # what the epoch's callbacks see
        return row

    def test_row(self, model: nn.Module, precision: str, channels_last: bool) -> dict[str, float]:
        if self.x_test is None or self.y_test is None:
            return {}
        ev = evaluate(model, self.x_test, self.y_test, batch_size=self.cfg.eval_batch_size,
                      device=self.device, precision=precision, channels_last=channels_last)
        return {"test_loss": ev["loss"], "test_acc": ev["acc"]}

    def context(self, epoch: int, model: nn.Module, row: dict[str, Any], rt: Runtime,
                precision: str) -> EpochContext:
        return EpochContext(epoch, model, row["train_loss"], row["train_acc"], self.x_train,
                            self.y_train, self.cfg, rt, precision, self.batch_means,
                            self.batch_sizes)


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
    """Train a classifier in place and return one metrics row per epoch.

    Args:
        model: a model taking images in [0, 1] (normalization inside).
        x_train: training images, uint8 (0..255) or float in [0, 1], N x C x H x W.
        y_train: int64 labels (N,).
        cfg: optimisation settings.
        rt: device, seed and progress switch.
        x_test, y_test: optional evaluation split (test_loss / test_acc per epoch).
        callbacks: per-epoch hooks (e.g. the SAL measurement) called with an
            :class:`EpochContext`; their dicts join the row.
        batch_loss: ``(model, x, y, info) -> (loss, logits)`` replacing plain cross-entropy
            (defenses, attacks); ``info`` is a :class:`~uebench.train.loop.BatchInfo`.
        run_dir, desc, step_hooks, state, run_id: as :func:`uebench.train.loop.run_epochs`
            (checkpoint and resume, progress label, per-step hooks, in-memory continuation, the
            id a resumed checkpoint must carry).

    Returns:
        Rows with ``epoch, lr, train_loss, train_acc, train_loss_official, [test_loss,
        test_acc], train_seconds, seconds`` + callbacks.
    """
    objective = ClassificationObjective(x_train, y_train, cfg=cfg, device=rt.device,
                                        x_test=x_test, y_test=y_test, batch_loss=batch_loss)
    return run_epochs(model, objective, cfg=cfg, rt=rt, callbacks=callbacks, run_dir=run_dir,
                      desc=desc, step_hooks=step_hooks, state=state, run_id=run_id)
