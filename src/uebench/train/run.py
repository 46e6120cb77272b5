"""Run directories: one training run = one directory that records everything.

::

    <out>/config.yaml     resolved RunCfg (written first)
    <out>/identity.json   run id and the content hash of its poison
    <out>/poisoned_indices.json   which images are poisoned (poison_ratio < 1 or poison_mix add)
    <out>/env.json        package versions, git commit, device
    <out>/metrics.jsonl   one JSON row per epoch (rewritten atomically after every epoch)
    <out>/checkpoint.pt   model/optimizer/scheduler after the last finished epoch
    <out>/summary.json    final numbers; written LAST: its presence marks a complete run

Re-running the same command resumes an interrupted run from ``checkpoint.pt``; a complete run is
reused, not retrained. A directory that holds a run with a different config is refused. The file
names and the readers of every file are in :mod:`uebench.train.rundir`.

What a run measures while it trains beyond the metrics (SAL after every epoch) is made by the
layers above training, which register a factory in :data:`RUN_CALLBACKS`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from uebench.config import RunCfg, canonical, config_hash, to_dict
from uebench.data.base import ImageSet, Splits, load_dataset
from uebench.defenses import DefensePipeline
from uebench.models.base import get_model
from uebench.poisons.store import content_hash, load_poisoned
from uebench.registry import Registry
from uebench.runtime import Runtime, resolve_device
from uebench.train import rundir
from uebench.train.classification import Callback, fit
from uebench.train.partial import (
    check_poisoned,
    data_seed,
    is_partial,
    mix_poison,
    poisoned_record,
)
from uebench.train.rundir import RUN_FILES, is_complete
from uebench.train.trajectory import recorder_for_run
from uebench.utils.env import environment
from uebench.utils.io import (
    DirectoryLock,
    atomic_write_text,
    check_output_dir,
    refuse_if_different,
    write_json,
)

__all__ = [
    "RUN_CALLBACKS", "RUN_FILES", "build_model", "defense_batch_loss", "defense_pipeline",
    "identity", "is_complete", "load_splits", "make_runtime", "run_directory", "sal_callbacks",
    "train_run", "training_set", "write_run_files",
]

# Per-epoch measurements a run's config asks for, made by the layers above training, which import
# training and so cannot be imported by it: ``fn(cfg) -> [Callback]`` under the config section's
# name. ``uebench.learnability.sal`` registers "sal" (SAL after every epoch, ``cfg.sal``); it is
# loaded with the package (``uebench/__init__.py``), so the entry is there before any run starts.
RUN_CALLBACKS: Registry[Callable[[RunCfg], list[Callback]]] = Registry("run measurement")


def make_runtime(cfg: RunCfg, progress: bool = True) -> Runtime:
    return Runtime(device=resolve_device(cfg.device), seed=cfg.seed, progress=progress)


def load_splits(cfg: RunCfg) -> Splits:
    """The clean train/test splits of a run (stratified subsets seeded by :func:`data_seed`)."""
    d = cfg.data
    return load_dataset(
        d.name, data_dir=d.data_dir, train_size=d.train_size, test_size=d.test_size,
        seed=data_seed(cfg),
    )


def training_set(cfg: RunCfg, splits: Splits) -> ImageSet:
    """What the run trains on: the clean or poisoned set (partly, or mixed with the clean one:
    :func:`mix_poison`), then the defense's dataset transforms (JPEG, grayscale, BDR, blur),
    applied once before training and cached for the process."""
    data = splits.train
    if cfg.poison is not None:
        data = mix_poison(cfg, splits.train, load_poisoned(Path(cfg.poison), splits.train))
    pipe = defense_pipeline(cfg)
    if not pipe.dataset:
        return data
    key = (pipe.dataset_spec(), cfg.seed, _bytes_hash(data.x), _bytes_hash(data.y))
    if key not in _PREPARED:
        _PREPARED.clear()  # one prepared set at a time: bounded memory
        _PREPARED[key] = pipe.prepare(data.x, data.y, seed=cfg.seed)
    meta = {**data.meta, "defense_prepared": pipe.dataset_spec()}
    return ImageSet(_PREPARED[key], data.y, data.classes, data.name, meta)


_PREPARED: dict[tuple[Any, ...], torch.Tensor] = {}

def _bytes_hash(t: torch.Tensor) -> str:
    import hashlib

    return hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()


def _trajectory_hooks(cfg: RunCfg, out: Path, n_train: int, model: nn.Module) -> list[Any]:
    """The trajectory recorder when ``cfg.trajectory.enabled`` (loss landscapes)."""
    t = cfg.trajectory
    if not t.enabled:
        return []
    recorder = recorder_for_run(out, cfg.train, n_train, every=t.every,
                                layers=list(t.layers) or None, dtype=t.dtype)
    recorder.begin(model)
    return [recorder]


def defense_pipeline(cfg: RunCfg) -> DefensePipeline:
    """The run's :class:`~uebench.defenses.DefensePipeline` (empty for ``defense: none``)."""
    return DefensePipeline.from_spec(cfg.defense)


def defense_batch_loss(cfg: RunCfg) -> Any:
    """fit's ``batch_loss`` for the run's batch / loss defenses, or ``None`` (plain CE)."""
    pipe = defense_pipeline(cfg)
    if not pipe.batch and pipe.loss_defense is None:
        return None

    def loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, info: Any) -> Any:
        return pipe.batch_loss(model, x, y, epoch=info.epoch, gen=info.generator())[:2]

    return loss


def build_model(cfg: RunCfg, clean_train: ImageSet) -> nn.Module:
    """The run's model with its initial weights drawn from ``init_seed`` (default: ``seed``).

    Normalization statistics come from the *clean* training set, so a clean and a poisoned run
    with the same ``init_seed`` start from identical models (the paper's Algorithm 1, line 1).
    """
    c, h, w = clean_train.image_shape
    if cfg.model.normalize:
        mean, std = clean_train.channel_stats()
    else:
        mean, std = (0.0,) * c, (1.0,) * c
    init_seed = cfg.seed if cfg.init_seed is None else cfg.init_seed
    torch.manual_seed(init_seed)
    return get_model(
        cfg.model.name,
        in_channels=c,
        image_size=(h, w),
        num_classes=clean_train.num_classes,
        width=cfg.model.width,
        mean=mean,
        std=std,
    )


def sal_callbacks(cfg: RunCfg) -> list[Callback]:
    """The per-epoch SAL measurement requested by ``cfg.sal`` (none when disabled), made by the
    factory registered in :data:`RUN_CALLBACKS`."""
    if not cfg.sal.enabled:
        return []
    return RUN_CALLBACKS.get("sal")(cfg)


def _check_existing(out: Path, cfg: Any) -> None:
    if not (out / rundir.CONFIG).exists():
        return
    # the stored config read back through the config class, so keys added since (with their
    # defaults) do not make an old run look different
    old = to_dict(rundir.read_config(out, type(cfg)))
    refuse_if_different(out, old, to_dict(cfg), what="a run")


def identity(cfg: RunCfg) -> dict[str, Any]:
    """What makes a run *this* run: its config and the content of its poison (not its path).

    A different poison imported into the same directory changes the content hash, so the old
    runs are never reused or resumed as if they had been trained on it.
    """
    return {"run_id": config_hash(cfg),
            "poison_sha256": content_hash(Path(cfg.poison)) if cfg.poison else None}


def _check_identity(out: Path, ident: dict[str, Any]) -> None:
    old = rundir.read_identity(out)
    if old is not None:
        refuse_if_different(out, old, ident, what="a run",
                            fix="The poison's content changed since this run was trained (or the "
                                "run belongs to other settings): use another --out, or delete "
                                "the run directory to retrain.")


def train_run(
    cfg: RunCfg,
    out: Path | str,
    *,
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
    splits: Splits | None = None,
    extra_summary: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train one run into ``out`` (resuming or reusing it) and return its summary.

    ``out`` must be new, empty or this run's directory; one process at a time works in it.
    """
    cfg = canonical(cfg)
    return run_directory(cfg, out, progress, lambda out, rt, ident: _train(
        cfg, out, rt, ident, callbacks=callbacks, splits=splits, extra_summary=extra_summary),
        check=lambda out: check_poisoned(
            cfg, out, lambda: (splits or load_splits(cfg)).train))


def run_directory(cfg: Any, out: Path | str, progress: bool,
                  train: Callable[[Path, Runtime, dict[str, Any]], dict[str, Any]],
                  check: Callable[[Path], None] | None = None) -> dict[str, Any]:
    """The run-directory protocol of every kind of run (single- and multi-task).

    Checks ``out`` (new, empty or this run's), locks it, refuses a directory of other settings or
    of another poison (and whatever ``check(out)`` refuses), returns the summary of a complete
    run, else ``train(out, rt, identity)``.
    """
    out = check_output_dir(out, marker=RUN_FILES, what="a uebench run")
    rt = make_runtime(cfg, progress)  # a bad device fails before anything is written
    with DirectoryLock(out):
        _check_existing(out, cfg)
        ident = identity(cfg)
        _check_identity(out, ident)
        if check is not None:
            check(out)
        if is_complete(out):
            return rundir.read_summary(out)
        return train(out, rt, ident)


def write_run_files(out: Path, cfg: Any, ident: dict[str, Any], rt: Runtime) -> None:
    """config.yaml, identity.json and env.json, written once the run's inputs have loaded."""
    atomic_write_text(out / rundir.CONFIG, yaml.safe_dump(to_dict(cfg), sort_keys=False))
    write_json(out / rundir.IDENTITY, ident)
    write_json(out / rundir.ENV, environment(rt.device))


def _train(cfg: RunCfg, out: Path, rt: Runtime, ident: dict[str, Any], *,
           callbacks: Sequence[Callback], splits: Splits | None,
           extra_summary: dict[str, Any] | None) -> dict[str, Any]:
    callbacks = [*callbacks, *sal_callbacks(cfg)]
    splits = splits or load_splits(cfg)
    train_set = training_set(cfg, splits)
    model = build_model(cfg, splits.train)
    hooks = _trajectory_hooks(cfg, out, len(train_set), model)
    write_run_files(out, cfg, ident, rt)
    if is_partial(cfg):
        write_json(out / rundir.POISONED, poisoned_record(cfg, splits.train))
    t0 = time.perf_counter()
    rows = fit(
        model,
        train_set.x,
        train_set.y,
        cfg=cfg.train,
        rt=rt,
        x_test=splits.test.x,
        y_test=splits.test.y,
        callbacks=callbacks,
        run_dir=out,
        desc=out.name or "train",
        run_id=ident["run_id"],
        batch_loss=defense_batch_loss(cfg),
        step_hooks=hooks,
    )
    for hook in hooks:
        hook.flush()  # anything still buffered (e.g. the step-0 snapshot)
    last = rows[-1] if rows else {}
    summary: dict[str, Any] = {
        "test_acc": last.get("test_acc"),
        "test_loss": last.get("test_loss"),
        "train_acc": last.get("train_acc"),
        "train_loss": last.get("train_loss"),
        "epochs": len(rows),
        "seconds": float(sum(r.get("seconds", 0.0) for r in rows)),
        "wall_seconds_this_session": time.perf_counter() - t0,
        "dataset": cfg.data.name,
        "model": cfg.model.name,
        "n_train": len(train_set),
        "n_test": len(splits.test),
        "poison": cfg.poison,
        **({"poison_ratio": cfg.poison_ratio, "poison_mix": cfg.poison_mix,
            "n_poisoned": train_set.meta["n_poisoned"]} if is_partial(cfg) else {}),
        "defense": cfg.defense,
        "seed": cfg.seed,
        "data_source": splits.train.meta.get("source", cfg.data.name),
    }
    summary.update(extra_summary or {})
    write_json(out / rundir.SUMMARY, summary)
    return summary
