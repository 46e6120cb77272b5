"""Train one run with its trajectory recorded: a run directory as ``uebench train`` writes it,
plus ``trajectory/``.

``train_run`` (uebench.train.run) does not take step hooks yet, so this calls ``fit`` itself
with the same building blocks (``make_runtime``, ``load_splits``, ``training_set``,
``build_model``, ``sal_callbacks``, so ``sal.enabled`` works) and writes the same files
(config.yaml first, env.json, metrics.jsonl and checkpoint.pt per epoch, summary.json last).
Resuming and reuse behave as for ``train_run``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from uebench.config import RunCfg, to_dict
from uebench.data.base import Splits
from uebench.errors import UebenchError
from uebench.landscape.trajectory import recorder_for_run
from uebench.utils.env import environment
from uebench.utils.io import atomic_write_text, read_json, write_json


def record_run(
    cfg: RunCfg,
    out: Path | str,
    *,
    every: int | None = None,
    layers: Sequence[str] | None = None,
    dtype: str = "float32",
    memory_mb: float = 256.0,
    splits: Splits | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train ``cfg`` into ``out`` recording the parameter path; returns the run summary.

    Args:
        cfg: the run's settings (as for ``uebench train``).
        out: the run directory; an interrupted run resumes, a complete one is reused.
        every: snapshot interval in optimiser steps; default about 150 snapshots per run.
        layers: module-path prefixes to record (all parameters if None).
        dtype: storage dtype of the snapshots.
        memory_mb: snapshot buffer size before a chunk is written.
        splits: the dataset splits, if already loaded.
        progress: show progress bars.
    """
    from uebench.train.loop import fit
    from uebench.train.run import (
        build_model,
        is_complete,
        load_splits,
        make_runtime,
        sal_callbacks,
        training_set,
    )

    out = Path(out)
    cfg_dict = to_dict(cfg)
    if (out / "config.yaml").exists() and yaml.safe_load((out / "config.yaml").read_text()) \
            != cfg_dict:
        raise UebenchError(f"{out} already holds a run with a different config; use another "
                           "output directory or delete that one")
    if is_complete(out):
        return read_json(out / "summary.json")
    rt = make_runtime(cfg, progress)
    splits = splits or load_splits(cfg)
    train_set = training_set(cfg, splits)
    model = build_model(cfg, splits.train)
    recorder = recorder_for_run(out, cfg.train, len(train_set), every=every, layers=layers,
                                dtype=dtype, memory_mb=memory_mb)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(cfg_dict, sort_keys=False))
    write_json(out / "env.json", environment(rt.device))
    recorder.begin(model)
    rows = fit(model, train_set.x, train_set.y, cfg=cfg.train, rt=rt, x_test=splits.test.x,
               y_test=splits.test.y, callbacks=sal_callbacks(cfg), run_dir=out,
               desc=out.name or "train", step_hooks=[recorder])
    recorder.flush()  # epochs=0: the step-0 snapshot is still buffered
    last = rows[-1] if rows else {}
    summary = {key: last.get(key) for key in ("test_acc", "test_loss", "train_acc", "train_loss")}
    summary.update({
        "epochs": len(rows), "seconds": float(sum(r.get("seconds", 0.0) for r in rows)),
        "dataset": cfg.data.name, "model": cfg.model.name, "n_train": len(train_set),
        "n_test": len(splits.test), "poison": cfg.poison, "seed": cfg.seed,
        "trajectory": {"every": recorder.every, "steps_per_epoch": recorder.steps_per_epoch,
                       "layers": layers, "dtype": dtype},
    })
    write_json(out / "summary.json", summary)
    return summary
