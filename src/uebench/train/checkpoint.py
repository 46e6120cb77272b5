"""A run's epoch checkpoint and per-epoch snapshots: written after each epoch, resumed from.

Every training loop of uebench (single-task, multi-task, an attack's surrogate) goes through
:func:`uebench.train.loop.run_epochs`, which calls these, so every run directory has the same
files with the same crash rules: the snapshot first, then ``metrics.jsonl``, then
``checkpoint.pt``; a crash between two of them leaves the metrics ahead of the checkpoint and
:func:`resume` trims them back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from uebench.errors import UebenchError
from uebench.train import rundir
from uebench.train.rundir import snapshot_path
from uebench.utils.io import (
    atomic_torch_save,
    atomic_write_bytes,
    corrupt,
    safe_torch_load,
    write_jsonl,
)


def write_checkpoint(
    run_dir: Path, model: nn.Module, opt: torch.optim.Optimizer, sched: Any, epoch: int,
    rows: list[dict[str, Any]], *, snapshot: bool = False, run_id: str | None = None,
) -> None:
    """Everything a resumed run needs after ``epoch``: the rows so far and the training state
    (and, with ``snapshot``, the model's state of this epoch for post-hoc SAL)."""
    run_dir = Path(run_dir)
    if snapshot:  # before metrics: a listed epoch always has its snapshot
        save_snapshot(run_dir, epoch, model)
    # metrics first, then the checkpoint: a crash between the two leaves metrics ahead of the
    # checkpoint, and resume() trims them back to the checkpoint's epoch.
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
    from safetensors.torch import save  # lazy: safetensors only where snapshots are written

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    path = snapshot_path(run_dir, epoch)
    atomic_write_bytes(path, save(state, metadata={"epoch": str(epoch)}))
    return path


def load_snapshot(run_dir: Path, epoch: int) -> dict[str, torch.Tensor]:
    """A stored per-epoch state dict (safetensors: no code can run on load)."""
    from safetensors import SafetensorError  # lazy: safetensors only where snapshots are read
    from safetensors.torch import load_file

    path = snapshot_path(run_dir, epoch)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise corrupt(path, str(exc).splitlines()[0][:100]) from None


def resume(
    run_dir: Path | None, model: nn.Module, opt: torch.optim.Optimizer, sched: Any,
    run_id: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """(rows, finished epochs) of the checkpoint in ``run_dir``, its state loaded into ``model``,
    ``opt`` and ``sched``; ``([], 0)`` when there is none. A checkpoint of another run id is
    refused, never resumed."""
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
