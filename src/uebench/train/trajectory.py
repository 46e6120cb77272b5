"""Trajectory recording: a ``fit()`` step hook streaming parameter snapshots to the run directory.

The optimisation path is what the paper's loss-landscape figures project (Ye et al., ICLR 2025,
arXiv 2509.08058, §3.1 and App. A.4: "collect trajectories ... every 5 steps"; PCA of the path
as in Li et al., NeurIPS 2018, arXiv 1712.09913). Usage::

    rec = TrajectoryRecorder(run_dir, every=5, steps_per_epoch=len(loader))
    rec.begin(model)                      # records step 0 (the initial weights) once
    fit(model, x, y, cfg=cfg, rt=rt, run_dir=run_dir, step_hooks=[rec])

Snapshots are taken every ``every`` optimiser steps and at the end of every epoch (so the last
snapshot is the final model, and every checkpoint's weights are on the path). They are buffered
in memory up to ``memory_mb`` and written as safetensors chunks
(:mod:`uebench.train.trajectory_store`) at least at every epoch end, *before* ``fit`` writes the
epoch checkpoint. Resuming is exact: ``on_resume(epoch, step)`` drops everything recorded after
the checkpoint's step; a run restarted from scratch (no checkpoint) drops everything after step 0
at its first step.

The hook only reads the model (``detach`` + copy to CPU), so training stays bit-identical. It
lives with training because a run records its path while it trains (``trajectory.enabled``);
:mod:`uebench.landscape` reads the path back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from uebench.config import TrainCfg
from uebench.errors import UebenchError
from uebench.train import trajectory_store as store

DEFAULT_SNAPSHOTS = 150  # the paper's toy run: 10 epochs x 63 steps / 5 = 126 snapshots


def default_every(total_steps: int, target: int = DEFAULT_SNAPSHOTS) -> int:
    """Snapshot interval giving about ``target`` snapshots over ``total_steps`` optimiser steps."""
    return max(1, round(total_steps / max(target, 1)))


def steps_per_epoch(n_train: int, batch_size: int, drop_last: bool) -> int:
    """Optimiser steps per epoch of ``fit`` (its loader yields this many batches)."""
    return n_train // batch_size if drop_last else math.ceil(n_train / batch_size)


def select_parameters(model: nn.Module, layers: Sequence[str] | None) -> list[tuple[str, Any]]:
    """``(name, parameter)`` pairs whose module path starts with one of ``layers`` (all if None).

    A prefix matches whole path components: ``"net.fc1"`` selects ``net.fc1.weight`` and
    ``net.fc1.bias`` but not ``net.fc10.weight``.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not layers:
        return named
    chosen = [(n, p) for n, p in named if any(n == pre or n.startswith(pre.rstrip(".") + ".")
                                              for pre in layers)]
    if not chosen:
        raise UebenchError(
            f"no parameter matches the layer prefixes {list(layers)}; parameter names look like "
            f"{', '.join(n for n, _ in named[:4])}"
        )
    return chosen


class TrajectoryRecorder:
    """Step hook that records parameter snapshots into ``run_dir/trajectory``.

    Args:
        run_dir: the run directory (the same one ``fit`` checkpoints into).
        every: snapshot interval in optimiser steps (see :func:`default_every`).
        steps_per_epoch: if given, the last step of every epoch is recorded too.
        layers: module-path prefixes to record (e.g. ``["net.fc3"]``); all parameters if None.
        memory_mb: buffer at most this much before writing a chunk (bounded memory).
        dtype: storage dtype (``float32``; ``float16``/``bfloat16`` halve the files).
    """

    def __init__(self, run_dir: Path | str, *, every: int, steps_per_epoch: int | None = None,
                 layers: Sequence[str] | None = None, memory_mb: float = 256.0,
                 dtype: str = "float32") -> None:
        if every < 1:
            raise UebenchError(f"trajectory interval must be >= 1 step, got {every}")
        if dtype not in store.DTYPES:
            raise UebenchError(f"trajectory dtype must be one of {', '.join(store.DTYPES)}")
        self.run_dir = Path(run_dir)
        self.every = int(every)
        self.steps_per_epoch = steps_per_epoch
        self.layers = list(layers) if layers else None
        self.memory_bytes = int(memory_mb * 2**20)
        self.dtype = dtype
        self._index: dict[str, Any] | None = None
        self._buffer: list[tuple[int, list[torch.Tensor]]] = []
        self._synced = False  # has the on-disk path been cut back to where training restarts?

    # ------------------------------------------------------------------ StepHook
    def begin(self, model: nn.Module) -> None:
        """Open (or create) the trajectory and record the initial weights as step 0 if absent."""
        index = self._open(model)
        if not index["chunks"] and not self._buffer:
            self._snapshot(model, 0)

    def on_step(self, model: nn.Module, step: int, epoch: int) -> None:
        self._open(model)
        if not self._synced:  # fresh start (no on_resume): anything past step-1 is stale
            self._cut(step - 1)
        at_epoch_end = bool(self.steps_per_epoch) and step % int(self.steps_per_epoch) == 0
        if step % self.every == 0 or at_epoch_end:
            self._snapshot(model, step)

    def on_epoch_end(self, epoch: int, step: int) -> None:
        self.flush()

    def on_resume(self, epoch: int, step: int) -> None:
        if self._index is None and not store.has_trajectory(self.run_dir):
            raise UebenchError(self._not_recorded(epoch))
        self._cut(step)
        # the checkpoint's own snapshot must be on the path, else training ran unrecorded
        expected = step if self.steps_per_epoch else step - step % self.every
        if self._last_step() != expected:
            raise UebenchError(self._not_recorded(epoch))

    def _not_recorded(self, epoch: int) -> str:
        return (f"resuming run {self.run_dir} at epoch {epoch} with a trajectory recorder, but "
                "its trajectory does not reach the checkpoint: the run was started without a "
                "recorder (or with other settings). Record into a new run directory")

    def _last_step(self) -> int:
        assert self._index is not None
        steps = [s for s, _ in self._buffer] + [c["last_step"] for c in self._index["chunks"]]
        return max(steps, default=-1)

    # ------------------------------------------------------------------ internals
    def flush(self) -> None:
        """Write buffered snapshots as one chunk, then the index (both atomically)."""
        if not self._buffer or self._index is None:
            return
        names = self._index["names"]
        steps = [s for s, _ in self._buffer]
        tensors = {n: torch.stack([flat[i] for _, flat in self._buffer])
                   for i, n in enumerate(names)}
        entry = store.write_chunk(self.run_dir, len(self._index["chunks"]), steps, tensors)
        self._index["chunks"].append(entry)
        store.write_index(self.run_dir, self._index)
        self._buffer = []

    def _open(self, model: nn.Module) -> dict[str, Any]:
        if self._index is not None:
            return self._index
        chosen = select_parameters(model, self.layers)
        names = [n for n, _ in chosen]
        shapes = [tuple(p.shape) for _, p in chosen]
        fresh = store.new_index(names, shapes, dtype=self.dtype, every=self.every,
                                steps_per_epoch=self.steps_per_epoch)
        if store.has_trajectory(self.run_dir):
            old = store.read_index(self.run_dir)
            keys = ("names", "shapes", "dtype", "every", "steps_per_epoch")
            differ = [k for k in keys if old.get(k) != fresh[k]]
            if differ:
                raise UebenchError(
                    f"{store.trajectory_dir(self.run_dir)} was recorded with other settings "
                    f"(differ in: {', '.join(differ)}); use a new run directory or delete it"
                )
            self._index = old
        else:
            store.trajectory_dir(self.run_dir).mkdir(parents=True, exist_ok=True)
            store.write_index(self.run_dir, fresh)
            self._index = fresh
        return self._index

    def _cut(self, last_step: int) -> None:
        self._buffer = [(s, t) for s, t in self._buffer if s <= last_step]
        if self._index is None:
            self._index = store.read_index(self.run_dir)
        self._index = store.truncate(self.run_dir, self._index, last_step)
        self._synced = True

    def _snapshot(self, model: nn.Module, step: int) -> None:
        assert self._index is not None
        params = dict(model.named_parameters())
        target = store.DTYPES[self.dtype]
        # copy=True: the snapshot must not alias the live parameter the optimiser updates
        flat = [params[n].detach().to("cpu", target, copy=True) for n in self._index["names"]]
        self._buffer.append((step, flat))
        per_snapshot = self._index["numel"] * flat[0].element_size()
        if len(self._buffer) * per_snapshot >= self.memory_bytes:
            self.flush()


def recorder_for_run(run_dir: Path | str, train: TrainCfg, n_train: int, *,
                     every: int | None = None, layers: Sequence[str] | None = None,
                     dtype: str = "float32", memory_mb: float = 256.0) -> TrajectoryRecorder:
    """The recorder for a training run of ``n_train`` images under ``train`` (epoch ends
    included; ``every`` defaults to about :data:`DEFAULT_SNAPSHOTS` snapshots per run)."""
    per_epoch = steps_per_epoch(n_train, train.batch_size, train.drop_last)
    every = every or default_every(per_epoch * train.epochs)
    return TrajectoryRecorder(run_dir, every=every, steps_per_epoch=per_epoch, layers=layers,
                              memory_mb=memory_mb, dtype=dtype)
