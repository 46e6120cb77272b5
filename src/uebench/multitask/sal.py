"""Per-task SAL: each task's loss, measured on its own layers, every epoch (paper §3.4, Fig. 4).

SAL (Ye et al., ICLR 2025, arXiv:2509.08058, Eq. 3) of layer ``l`` *for task t* is the largest
change of task t's training loss when only ``W_l`` moves inside ‖v‖ ≤ ε‖W_l‖. The layers of task
t are those of :class:`~uebench.multitask.model.TaskView`: the shared backbone (``backbone.*``)
and the task's head (``heads.<t>.*``). Any registered SAL engine measures it: the engines take
the task's per-sample loss (:func:`uebench.multitask.losses.sample_loss`) and its targets
(dense for segmentation, depth and keypoints) instead of cross-entropy on labels.

Every task of an epoch is measured with the same seed streams ``(7, epoch)``: the same probe
and held-out images (fast) or batch stream (compat), so tasks differ only by their loss. The
compat/reference engines replay the training batch size and ``drop_last``; per-pixel targets
are replayed without flips (the SAL loader moves images only), classification targets with the
run's augmentation. Rows get ``task_sal: {task: {layer: SAL}}``, ``task_sal_origin`` (per task),
``task_sal_origin_kind``, ``task_sal_seconds`` and ``task_sal_engine``; :func:`task_rows` turns
them into the single-task row format that β / #LP / UD (:mod:`uebench.learnability`) read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from uebench.errors import ConfigError
from uebench.learnability.sal import check_engine_options, run_sal
from uebench.learnability.task import ORIGINS, SALData, SALResult
from uebench.models.base import layer_names
from uebench.multitask.dataset import MultiTaskSet
from uebench.multitask.losses import sample_loss
from uebench.multitask.model import MultiTaskNet, TaskView
from uebench.multitask.train import MultiTaskEpoch
from uebench.runtime import Runtime

KEY = "task_sal"


def sal_pipeline(train_cfg: Any, target_dims: int) -> SALData:
    """The training pipeline the replaying engines use for one task's targets."""
    augment = str(train_cfg.augment) if target_dims < 3 else "none"
    return SALData(batch_size=int(train_cfg.batch_size), augment=augment,
                   crop_padding=int(train_cfg.crop_padding), drop_last=bool(train_cfg.drop_last))


def measure_task_sal(model: MultiTaskNet, data: MultiTaskSet, task: str, *, rt: Runtime,
                     pipeline: SALData, engine: str = "fast", eps: float = 0.05,
                     layers: Sequence[str] | None = None, origin: str | None = None,
                     origin_loss: float | None = None, seed_offsets: Sequence[int] = (7, 0),
                     **options: Any) -> SALResult:
    """SAL of ``task``'s layers for ``task``'s loss on ``data`` (see the module docstring).

    Args:
        model: the multi-task model (left unchanged: weights, modes, ``requires_grad``).
        data: the images and targets it trains on (possibly poisoned).
        task: one of ``data``'s tasks with a head in ``model``.
        rt, pipeline, engine, eps, layers, origin, origin_loss, seed_offsets, options: as
            :func:`uebench.learnability.sal.run_sal` (``layers`` default: every layer of
            ``TaskView(model, task)``).
    """
    spec = data.tasks[task]
    return run_sal(TaskView(model, task), data.x, data.targets[task], rt=rt, data=pipeline,
                   engine=engine, eps=eps, layers=layers, origin=origin, origin_loss=origin_loss,
                   seed_offsets=seed_offsets, loss=sample_loss(spec), **options)


class TaskSALCallback:
    """Per-epoch per-task SAL for ``fit_multitask(callbacks=[TaskSALCallback(...)])``.

    Args:
        engine, eps, origin: as :func:`uebench.learnability.sal.run_sal`; the official origin
            is the task's running train loss ``train/<task>/loss`` (tasks trained with weight 0
            have none and fall back to exact).
        tasks: tasks to measure (default every task of the training data).
        every: measure every ``every``-th epoch.
        **options: engine options (checked now).
    """

    def __init__(self, engine: str = "fast", *, eps: float = 0.05, origin: str | None = None,
                 tasks: Sequence[str] | None = None, every: int = 1, **options: Any) -> None:
        check_engine_options(engine, options)
        if origin is not None and origin not in ORIGINS:
            raise ConfigError(f"origin must be one of {sorted(ORIGINS)}, got {origin!r}")
        self.engine, self.eps, self.origin = engine, eps, origin
        self.tasks, self.every, self.options = tasks, max(1, int(every)), dict(options)

    def __call__(self, ep: MultiTaskEpoch) -> dict[str, Any] | None:
        if ep.epoch % self.every:
            return None
        values, origins, seconds, kind = {}, {}, {}, "exact"
        for task in self.tasks or ep.train.task_names:
            res = measure_task_sal(
                ep.model, ep.train, task, rt=ep.rt,
                pipeline=sal_pipeline(ep.cfg, ep.train.targets[task].dim()), engine=self.engine,
                eps=self.eps, origin=self.origin, origin_loss=ep.row.get(f"train/{task}/loss"),
                seed_offsets=(7, ep.epoch), **self.options)
            values[task], origins[task], seconds[task] = res.values, res.origin, res.seconds
            kind = res.details["origin_kind"]
        return {KEY: values, f"{KEY}_origin": origins, f"{KEY}_origin_kind": kind,
                f"{KEY}_seconds": seconds, f"{KEY}_engine": self.engine}


def sal_callbacks(cfg: Any) -> list[TaskSALCallback]:
    """The per-task SAL measurement a :class:`~uebench.multitask.config.MultiTaskRunCfg` asks
    for (none when ``sal.enabled`` is false)."""
    if not cfg.sal.enabled:
        return []
    return [TaskSALCallback(cfg.sal.engine, eps=cfg.sal.eps, origin=cfg.sal.origin,
                            **dict(cfg.sal.options))]


# ----------------------------------------------------------------------------- stored rows


def measured_tasks(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Tasks with per-task SAL in a run's rows, in first-seen order."""
    names: dict[str, None] = {}
    for row in rows:
        for task in row.get(KEY) or {}:
            names[task] = None
    return list(names)


def task_rows(rows: Sequence[Mapping[str, Any]], task: str,
              layers: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """``[{"epoch", "sal": {layer: value}}]`` of one task (epochs that measured it), optionally
    restricted to ``layers``: the row format of :mod:`uebench.learnability.threshold`."""
    out = []
    for row in rows:
        sal = (row.get(KEY) or {}).get(task)
        if sal is None:
            continue
        if layers is not None:
            sal = {k: sal[k] for k in layers if k in sal}
        out.append({"epoch": row.get("epoch"), "sal": dict(sal)})
    return out


def shared_layers(rows: Sequence[Mapping[str, Any]], tasks: Sequence[str]) -> list[str]:
    """Layers every task measured (the shared backbone), in the first task's order."""
    first = next((r[KEY] for r in rows if r.get(KEY)), None)
    if not first or not tasks:
        return []
    common = set.intersection(*(set(first.get(t, {})) for t in tasks))
    return [k for k in first[tasks[0]] if k in common]


def task_view_layers(model: nn.Module, task: str) -> list[str]:
    """Module paths of every Conv2d/Linear of ``TaskView(model, task)`` (backbone + head)."""
    return layer_names(TaskView(model, task))  # type: ignore[arg-type]
