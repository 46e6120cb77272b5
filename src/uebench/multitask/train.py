"""Multi-task training: ``fit_multitask`` (weighted loss, per-epoch per-task metrics, resume).

The loop of single-task training (:func:`uebench.train.loop.run_epochs`) with a multi-task
objective (:class:`MultiTaskObjective`) and a :class:`~uebench.config.TrainCfg` (``augment`` must
be ``none`` or ``flip``). Randomness follows
:func:`uebench.train.fit`: epoch ``e`` draws its order and flips from ``rt.generator(1, e)`` and
seeds dropout with ``derive_seed(rt.seed, 2, e)``, so a run is reproducible on CPU.
Rows: ``epoch, lr, train_loss, train/<task>/loss, train/<task>/<metric>`` (running, train mode),
``test_loss, test/<task>/loss, test/<task>/<metric>`` (eval mode) when a test split is given,
``train_seconds``, callback keys, ``seconds``. With a ``run_dir`` the rows and checkpoints go to
the files of :func:`uebench.train.fit` and an interrupted run resumes with the same weights it
would have had.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
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
from uebench.runtime import Runtime, autocast
from uebench.train.loop import BatchInfo, FitState, run_epochs


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


class MultiTaskObjective:
    """A multi-task set's batches, the weighted sum of its tasks' losses, running per-task losses
    and metrics (train mode) and an eval-mode test split (see :func:`fit_multitask`)."""

    def __init__(self, train: MultiTaskSet, *, cfg: TrainCfg, device: torch.device,
                 test: MultiTaskSet | None = None, weights: Mapping[str, float] | None = None,
                 images: torch.Tensor | None = None) -> None:
        self.train, self.test, self.weights, self.cfg = train, test, weights, cfg
        self.loader = MultiTaskLoader(train, batch_size=cfg.batch_size, device=device,
                                      shuffle=True, drop_last=cfg.drop_last,
                                      flip=cfg.augment == "flip", images=images)
        self._reset()

    def _reset(self) -> None:
        self.running = _Running("train_loss", "train/{}/loss")
        self.metrics = MetricAccumulator(self.train.tasks)

    def __len__(self) -> int:
        return len(self.loader)

    def batches(self, gen: torch.Generator) -> Iterable[tuple[torch.Tensor, Any]]:
        return self.loader.batches(gen)

    def loss(self, model: nn.Module, x: torch.Tensor, targets: Mapping[str, torch.Tensor],
             info: BatchInfo) -> tuple[torch.Tensor, Any]:
        outputs = model(x)
        loss, per_task = multitask_loss(outputs, targets, self.train.tasks, self.weights)
        return loss, (outputs, per_task)

    def record(self, loss: torch.Tensor, outputs: Any, targets: Mapping[str, torch.Tensor],
               n: int) -> None:
        out, per_task = outputs
        self.running.add(loss, per_task, n)
        self.metrics.update({t: o.detach() for t, o in out.items()}, targets)

    def train_row(self) -> dict[str, float]:
        row = {**self.running.means(),
               **{f"train/{k}": v for k, v in self.metrics.compute().items()}}
        self._reset()
        return row

    def test_row(self, model: nn.Module, precision: str, channels_last: bool) -> dict[str, float]:
        if self.test is None:
            return {}
        ev = evaluate_multitask(model, self.test, weights=self.weights,
                                batch_size=self.cfg.eval_batch_size,
                                device=self.loader.device, precision=precision)
        return {("test_loss" if k == "loss" else f"test/{k}"): v for k, v in ev.items()}

    def context(self, epoch: int, model: nn.Module, row: dict[str, Any], rt: Runtime,
                precision: str) -> MultiTaskEpoch:
        return MultiTaskEpoch(epoch, model, row, self.train, self.cfg, rt)


def fit_multitask(
    model: nn.Module, train: MultiTaskSet, *, cfg: TrainCfg, rt: Runtime,
    test: MultiTaskSet | None = None, weights: Mapping[str, float] | None = None,
    callbacks: Sequence[EpochCallback] = (), desc: str = "train", run_dir: Path | None = None,
    run_id: str | None = None, state: FitState | None = None, images: torch.Tensor | None = None,
) -> list[dict[str, Any]]:
    """Train a multi-task model in place on ``sum_t w_t L_t``; one metrics row per epoch.

    :func:`uebench.train.loop.run_epochs` (the loop single-task training runs) with a
    :class:`MultiTaskObjective`.

    Args:
        model: ``forward(x) -> {task: output}`` on images in [0, 1] (normalization inside).
        train: the training split.
        cfg: optimisation settings (``augment``: ``none`` or ``flip``).
        rt: device, seed, progress switch.
        test: optional evaluation split (same tasks).
        weights: ``{task: w_t}`` (None = all tasks, weight 1); see :func:`multitask_loss`.
        callbacks: per-epoch hooks called with a :class:`MultiTaskEpoch`; their dicts join the row.
        desc, run_dir, run_id, state: as :func:`uebench.train.loop.run_epochs` (progress label,
            checkpoint and resume, the id a resumed checkpoint must carry, in-memory continuation
            of the optimiser across calls, which a poison search uses).
        images: float images in [0, 1] replacing ``train.x`` (e.g. ``x + delta`` during a
            poison search, before quantization).
    """
    if cfg.augment not in ("none", "flip"):
        raise ConfigError(f"multi-task training supports train.augment=none|flip, got "
                          f"'{cfg.augment}' (crops would misalign dense targets)")
    check_task_specs(train.tasks)
    objective = MultiTaskObjective(train, cfg=cfg, device=rt.device, test=test, weights=weights,
                                   images=images)
    return run_epochs(model, objective, cfg=cfg, rt=rt, callbacks=callbacks, run_dir=run_dir,
                      desc=desc, state=state, run_id=run_id)
