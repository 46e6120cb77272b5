"""SAL measured after training, from a run's per-epoch snapshots (``uebench sal RUN``).

A run trained with ``train.snapshots=true`` keeps the model state of every epoch in
``RUN/snapshots/epoch-NNNN.safetensors``. :func:`measure_run` rebuilds the model and the exact
training data of the run (the poisoned set for a poisoned run), loads each snapshot and measures
SAL with any engine and settings, writing one row per epoch to ``RUN/sal/<tag>.jsonl`` (and the
measurement's settings to ``RUN/sal/<tag>.yaml``). It is what the in-training
:class:`~uebench.learnability.sal.SALCallback` would have measured: the same data pipeline as
training (batch size, augmentation), the same seed streams ``(7, epoch)``, and the epoch's running
train loss from ``metrics.jsonl`` as the official origin — so measuring *after* training gives the
same values as measuring *during* it (tested), while training stays cheap and measurements of
several engines / ε / epochs can share one set of runs, run in any order and resume.

Why: on CPUs one SAL measurement costs more than a whole small training run, and the paper's
protocol (compat engine) costs ~20 training epochs per measurement; decoupling lets a study train
everything first, then spend the measurement budget where it matters (every epoch with the fast
engine, every k-th epoch with compat), and quantify what subsampling epochs changes.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from uebench.data.base import stratified_subset
from uebench.errors import UebenchError
from uebench.learnability.sal import check_engine_options, run_sal
from uebench.train import rundir
from uebench.train.checkpoint import load_snapshot
from uebench.train.run import build_model, defense_pipeline, load_splits, make_runtime, training_set
from uebench.train.rundir import SAL_DIR, snapshot_epochs  # public here as well
from uebench.train.sal_tags import (  # the tag files' readers, public here as well
    merge_tag_rows,
    read_tag,
    read_tag_settings,
    tag_paths,
)
from uebench.utils.io import atomic_write_text, refuse_if_different, write_jsonl
from uebench.utils.progress import bar

__all__ = [
    "SAL_DIR", "measure_run", "merge_tag_rows", "read_tag", "recalibrate_batchnorm",
    "select_epochs", "snapshot_epochs", "tag_paths",
]

def select_epochs(available: Sequence[int], *, every: int = 1,
                  epochs: Iterable[int] | None = None) -> list[int]:
    """Epochs to measure: an explicit list, or every ``every``-th (counting from the last one).

    Counting back from the last epoch keeps the final model in every subsample (the epoch the
    reported test accuracy belongs to).
    """
    if epochs is not None:
        wanted = sorted(set(int(e) for e in epochs))
        missing = [e for e in wanted if e not in available]
        if missing:
            raise UebenchError(f"no snapshot for epoch(s) {missing}; have {list(available)}")
        return wanted
    if every < 1:
        raise UebenchError(f"--every must be >= 1, got {every}")
    if not available:
        return []
    last = available[-1]
    return [e for e in available if (last - e) % every == 0]


def measure_run(run_dir: Path | str, *, tag: str, engine: str = "fast", eps: float = 0.05,
                origin: str | None = None, every: int = 1, epochs: Iterable[int] | None = None,
                options: Mapping[str, Any] | None = None, device: str | None = None,
                recalibrate_bn: bool = False, subset: int | None = None,
                origin_from: str | None = None,
                progress: bool = True) -> list[dict[str, Any]]:
    """Measure SAL of a run's stored epochs into ``RUN/sal/<tag>.jsonl`` (resumable).

    Args:
        run_dir: a run trained with ``train.snapshots=true``.
        tag: name of this measurement (``compat``, ``eps0.1``, ...).
        engine, eps, origin, options: as in :func:`uebench.learnability.sal.run_sal`.
        every, epochs: which epochs (default all; see :func:`select_epochs`).
        device: ``cpu``/``cuda``; default the run's device setting.
        recalibrate_bn: before measuring, re-estimate BatchNorm running statistics with the
            snapshot's weights (one train-mode pass over the un-augmented training data, weights
            untouched) — isolates how much SAL comes from statistics lagging the weights.
        subset: measure on a seeded, class-stratified subset of this many training images (the
            same subset for every epoch) instead of all of them: the compat engine's cost is 10
            passes over its data per measurement, which a CPU study cannot afford on every image.
            Recorded in the tag's settings; the SAL estimates the same loss, with more noise.
        origin_from: the ``metrics.jsonl`` field the official origin is read from; default
            ``train_loss_official`` (the paper code's formula for this run's batches). A run
            trained without ``drop_last`` has a short last batch, which that formula scales by
            (batches × last-batch size / images), e.g. 0.54 at 5,000 images and batch 256;
            ``train_loss`` (the per-image running mean) is what the formula gives under the paper's
            ``drop_last=True``. Recorded in the tag's settings.
    Returns:
        All rows of the tag, epoch order.
    """
    run_dir = Path(run_dir)
    cfg = rundir.read_config(run_dir)
    if device is not None:
        cfg = dataclasses.replace(cfg, device=device)
    check_engine_options(engine, dict(options or {}))
    how = PosthocSettings(engine, float(eps), origin, dict(options or {}), bool(recalibrate_bn),
                          subset, origin_from)
    metrics = {int(r["epoch"]): r for r in rundir.read_metrics(run_dir, missing_ok=True)}
    # checked before the tag's settings are written, so a typo does not claim the tag
    wanted = _wanted_epochs(run_dir, how, metrics, every=every, epochs=epochs)
    rows_path, _ = tag_paths(run_dir, tag)
    _check_settings(run_dir, how.tag_settings(), tag)
    done = {int(r["epoch"]): r for r in (read_tag(run_dir, tag) if rows_path.exists() else [])}
    todo = [e for e in wanted if e not in done]
    if todo:
        _measure_epochs(run_dir, cfg, tag, how, todo, done, metrics, progress)
    return [done[e] for e in sorted(done)]


@dataclasses.dataclass(frozen=True)
class PosthocSettings:
    """How a post-hoc SAL tag is measured (:func:`measure_run`'s arguments); a tag keeps one."""

    engine: str
    eps: float
    origin: str | None
    options: dict[str, Any]
    recalibrate_bn: bool
    subset: int | None = None
    origin_from: str | None = None

    def tag_settings(self) -> dict[str, Any]:
        """What ``RUN/sal/<tag>.yaml`` records (``subset`` and ``origin_from`` only when used,
        so tags measured before they existed stay valid)."""
        settings = {"engine": self.engine, "eps": self.eps, "origin": self.origin,
                    "options": dict(self.options), "recalibrate_bn": self.recalibrate_bn}
        if self.subset is not None:
            settings["subset"] = int(self.subset)
        if self.origin_from is not None:
            settings["origin_from"] = str(self.origin_from)
        return settings

    def origin_loss(self, row: Mapping[str, Any]) -> float | None:
        """The epoch's official-origin loss from its metrics row."""
        if self.origin_from is not None:
            return row.get(self.origin_from)
        return row.get("train_loss_official", row.get("train_loss"))


def _wanted_epochs(run_dir: Path, how: PosthocSettings, metrics: Mapping[int, Mapping[str, Any]],
                   *, every: int, epochs: Iterable[int] | None) -> list[int]:
    """The stored epochs to measure; refuses a run without snapshots and an ``origin_from``
    field its metrics lack."""
    available = snapshot_epochs(run_dir)
    if not available:
        raise UebenchError(
            f"{run_dir} has no per-epoch snapshots: train it with train.snapshots=true "
            "(uebench train ... train.snapshots=true) to measure SAL after training")
    wanted = select_epochs(available, every=every, epochs=epochs)
    field = how.origin_from
    if field is not None and (missing := [e for e in wanted if field not in metrics.get(e, {})]):
        fields = sorted(k for k, v in metrics.get(missing[0], {}).items()
                        if isinstance(v, float) and "loss" in k)
        raise UebenchError(f"origin_from={field!r}: {run_dir}/metrics.jsonl has no such "
                           f"field for epoch(s) {missing}; loss fields there: {fields}")
    return wanted


def _measure_epochs(run_dir: Path, cfg: Any, tag: str, how: PosthocSettings, todo: list[int],
                    done: dict[int, dict[str, Any]], metrics: Mapping[int, Mapping[str, Any]],
                    progress: bool) -> None:
    """Measure each epoch of ``todo`` from its snapshot into ``done``, writing the tag's rows
    (atomically) after every epoch, so an interrupted measurement resumes where it stopped."""
    rows_path, _ = tag_paths(run_dir, tag)
    rt = make_runtime(cfg, progress)
    splits = load_splits(cfg)
    data = training_set(cfg, splits)
    if how.subset is not None and how.subset < len(data):
        data = data.subset(stratified_subset(data.y, int(how.subset), seed=7))
    model = build_model(cfg, splits.train).to(rt.device)
    eval_origin = defense_pipeline(cfg).official_origin == "eval"
    pbar = bar(len(todo), enabled=rt.show_progress, desc=f"SAL {tag} {run_dir.name}",
               unit="epoch")
    for epoch in todo:
        model.load_state_dict(load_snapshot(run_dir, epoch))
        if how.recalibrate_bn:
            recalibrate_batchnorm(model, data.x, batch_size=cfg.train.batch_size)
        # MixUp/CutMix: the official origin is an eval pass (= exact)
        origin_loss = None if eval_origin else how.origin_loss(metrics.get(epoch, {}))
        res = run_sal(model, data.x, data.y, rt=rt, data=cfg.train, engine=how.engine,
                      eps=how.eps, origin=how.origin, origin_loss=origin_loss,
                      seed_offsets=(7, epoch), **how.options)
        done[epoch] = {"epoch": epoch, "sal": res.values, "sal_origin": res.origin,
                       "sal_origin_kind": res.details["origin_kind"],
                       "sal_seconds": res.seconds, "sal_engine": how.engine}
        write_jsonl(rows_path, [done[e] for e in sorted(done)])  # atomic, after every epoch
        pbar.update(1)
    pbar.close()


def _check_settings(run_dir: Path, settings: dict[str, Any], tag: str) -> None:
    """A tag keeps one set of settings: refuse to mix measurements under one name."""
    canonical = json.loads(json.dumps(settings))
    old = read_tag_settings(run_dir, tag)
    if old is not None:
        refuse_if_different(run_dir, old, canonical, what=f"a SAL measurement tagged {tag!r}",
                            fix="Use another --tag, or delete that tag's files to re-measure.")
        return
    atomic_write_text(tag_paths(run_dir, tag)[1], yaml.safe_dump(canonical, sort_keys=True))


@torch.no_grad()
def recalibrate_batchnorm(model: torch.nn.Module, x: torch.Tensor, *,
                          batch_size: int = 256) -> None:
    """Re-estimate BatchNorm running statistics for the current weights (cumulative average).

    One train-mode pass in data order over un-augmented images with ``momentum=None`` (an exact
    average over batches); weights are not touched. The model is left in eval mode.
    """
    from torch import nn

    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    device = next(model.parameters()).device
    for start in range(0, int(x.shape[0]), batch_size):
        xb = x[start:start + batch_size].to(device)
        model(xb.float().div(255.0) if xb.dtype == torch.uint8 else xb.float())
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    model.eval()
