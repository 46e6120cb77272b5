"""Multi-task run directories: the single-task run contract for a model with one head per task.

``train_multitask_run(cfg, out)`` writes exactly the files of :func:`uebench.train.run.train_run`
(``config.yaml`` with the resolved :class:`~uebench.multitask.config.MultiTaskRunCfg` first,
``identity.json``, ``env.json``, ``metrics.jsonl`` and ``checkpoint.pt`` after every epoch,
``summary.json`` last), under the same directory lock; re-running the same command resumes an
interrupted run (ending with the weights of an uninterrupted one) or reuses a complete one, and
a directory holding another run is refused. Rows carry every task's train and test metrics
(``test/<task>/<metric>``) and, with ``sal.enabled``, per-task SAL (:mod:`.sal`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from uebench.multitask.config import MultiTaskRunCfg
from uebench.multitask.dataset import MultiTaskSet, load_multitask
from uebench.multitask.model import MultiTaskNet, build_multitask_model
from uebench.multitask.poisons import load_poisoned_multitask
from uebench.multitask.sal import sal_callbacks
from uebench.multitask.train import EpochCallback, check_task_specs, fit_multitask
from uebench.train import rundir
from uebench.train.run import run_directory, write_run_files
from uebench.utils.io import write_json


@dataclass(frozen=True)
class MultiTaskSplits:
    """The clean train and test splits of a run (every task of the dataset)."""

    train: MultiTaskSet
    test: MultiTaskSet


def load_multitask_splits(cfg: MultiTaskRunCfg) -> MultiTaskSplits:
    """The run's clean splits: seeded subsets (``data.subset_seed``, else ``seed``), all tasks."""
    d = cfg.data
    seed = cfg.seed if d.subset_seed is None else d.subset_seed
    kwargs: dict[str, Any] = {"data_dir": d.data_dir, "seed": seed, **d.options}
    return MultiTaskSplits(load_multitask(d.name, "train", size=d.train_size, **kwargs),
                           load_multitask(d.name, d.test_split, size=d.test_size, **kwargs))


def training_set(cfg: MultiTaskRunCfg, clean_train: MultiTaskSet) -> MultiTaskSet:
    """What the run trains on: the clean or poisoned images, with the run's tasks.

    The poison is applied before the tasks are selected (its labels belong to the label task,
    which a run for other tasks does not train).
    """
    data = clean_train
    if cfg.poison is not None:
        data = load_poisoned_multitask(Path(cfg.poison), clean_train)
    return select_tasks(cfg, data)


def select_tasks(cfg: MultiTaskRunCfg, data: MultiTaskSet) -> MultiTaskSet:
    """``data`` with the run's tasks (all of them for ``tasks: []``), checked."""
    out = data.select(list(cfg.tasks)) if cfg.tasks else data
    check_task_specs(out.tasks)
    return out


def build_run_model(cfg: MultiTaskRunCfg, clean_train: MultiTaskSet) -> MultiTaskNet:
    """The run's model, initial weights from ``init_seed`` (default ``seed``).

    Normalization statistics come from the *clean* images, so a clean and a poisoned run with
    the same ``init_seed`` and tasks start from identical models (the paper's Algorithm 1).
    """
    c, h, w = clean_train.image_shape
    mean, std = clean_train.channel_stats() if cfg.model.normalize else ((0.0,) * c, (1.0,) * c)
    torch.manual_seed(cfg.seed if cfg.init_seed is None else cfg.init_seed)
    tasks = select_tasks(cfg, clean_train).tasks
    return build_multitask_model(tasks, backbone=cfg.model.backbone, in_channels=c,
                                 image_size=(h, w), width=cfg.model.width,
                                 decoder_channels=cfg.model.decoder_channels, mean=mean, std=std)


def train_multitask_run(
    cfg: MultiTaskRunCfg, out: Path | str, *, callbacks: Sequence[EpochCallback] = (),
    progress: bool = True, splits: MultiTaskSplits | None = None,
) -> dict[str, Any]:
    """Train one multi-task run into ``out`` (resuming or reusing it); returns its summary.

    ``out`` must be new, empty or this run's directory; one process at a time works in it.
    """
    def train(out: Path, rt: Any, ident: dict[str, Any]) -> dict[str, Any]:
        nonlocal splits
        splits = splits or load_multitask_splits(cfg)
        data = training_set(cfg, splits.train)
        model = build_run_model(cfg, splits.train)
        write_run_files(out, cfg, ident, rt)
        t0 = time.perf_counter()
        rows = fit_multitask(model, data, cfg=cfg.train, rt=rt,
                             test=select_tasks(cfg, splits.test),
                             weights=dict(cfg.weights) or None,
                             callbacks=[*callbacks, *sal_callbacks(cfg)], desc=out.name or "train",
                             run_dir=out, run_id=ident["run_id"])
        summary = _summary(cfg, rows, data, splits, time.perf_counter() - t0)
        write_json(out / rundir.SUMMARY, summary)
        return summary

    return run_directory(cfg, out, progress, train)


def _summary(cfg: MultiTaskRunCfg, rows: list[dict[str, Any]], train: MultiTaskSet,
             splits: MultiTaskSplits, wall: float) -> dict[str, Any]:
    last = rows[-1] if rows else {}
    return {
        "test_loss": last.get("test_loss"),
        "train_loss": last.get("train_loss"),
        **{k: v for k, v in last.items() if k.startswith("test/")},
        "epochs": len(rows),
        "seconds": float(sum(r.get("seconds", 0.0) for r in rows)),
        "wall_seconds_this_session": wall,
        "dataset": cfg.data.name,
        "tasks": list(train.task_names),
        "backbone": cfg.model.backbone,
        "n_train": len(train),
        "n_test": len(splits.test),
        "poison": cfg.poison,
        "seed": cfg.seed,
        "data_source": splits.train.meta.get("source", cfg.data.name),
    }
