"""On-disk trajectory format: parameter snapshots in safetensors chunks plus an index.

::

    RUN/trajectory/index.json                 format, names, shapes, dtype, every, chunk list
    RUN/trajectory/chunk-000000.safetensors   one tensor per parameter, (n, *shape), + "__steps__"

A chunk holds the snapshots of ``n`` consecutive recorded steps; ``__steps__`` (int64, n) gives
their global optimiser steps (0 = the initial weights). Every file is written atomically and the
index last, so a crash leaves either the old or the new index, never a half chunk in the index;
chunk files the index does not list are orphans and are removed on the next write.

Storing one tensor per parameter (rather than one flat vector per snapshot) lets readers load a
column block (one parameter across all snapshots) lazily with ``safe_open(...).get_slice``, so a
ResNet-18 trajectory never has to fit in memory (:func:`iter_parameter_blocks`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes

from uebench.errors import UebenchError
from uebench.train.rundir import TRAJECTORY
from uebench.utils.io import atomic_write_bytes, write_json

FORMAT = "uebench-trajectory/1"
DIRNAME = TRAJECTORY
INDEX = "index.json"
STEPS_KEY = "__steps__"
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
          "float64": torch.float64}


class TrajectoryError(UebenchError):
    """A run has no trajectory, or its trajectory files are inconsistent."""


class Trajectory(NamedTuple):
    """A recorded optimisation path.

    ``steps``: int64 (T,) global optimiser steps (0 = initial weights), increasing.
    ``matrix``: (T, D) snapshots; column order = ``names`` in order, each parameter flattened.
    ``names`` / ``shapes``: the recorded parameters (``model.named_parameters()`` paths).
    """

    steps: np.ndarray
    matrix: torch.Tensor
    names: list[str]
    shapes: list[tuple[int, ...]]


def trajectory_dir(run_dir: Path | str) -> Path:
    return Path(run_dir) / DIRNAME


def has_trajectory(run_dir: Path | str) -> bool:
    return (trajectory_dir(run_dir) / INDEX).is_file()


def new_index(names: Sequence[str], shapes: Sequence[Sequence[int]], *, dtype: str,
              every: int, steps_per_epoch: int | None) -> dict[str, Any]:
    return {"format": FORMAT, "names": list(names), "shapes": [list(s) for s in shapes],
            "numel": int(sum(int(np.prod(s)) for s in shapes)), "dtype": dtype,
            "every": int(every), "steps_per_epoch": steps_per_epoch, "chunks": []}


def read_index(run_dir: Path | str) -> dict[str, Any]:
    """The index of a run's trajectory; :class:`TrajectoryError` if there is none."""
    path = trajectory_dir(run_dir) / INDEX
    if not path.is_file():
        raise TrajectoryError(
            f"run {run_dir} has no trajectory ({path} is missing). Record one while training: "
            "pass uebench.landscape.TrajectoryRecorder(run_dir, ...) as a fit() step hook, or "
            "train with uebench.landscape.record_run(cfg, out)"
        )
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise TrajectoryError(f"{path} is not valid JSON ({exc.msg})") from exc
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise TrajectoryError(f"{path} is not a {FORMAT} index")
    return index


def write_index(run_dir: Path | str, index: Mapping[str, Any]) -> None:
    """Write the index atomically and delete chunk files it no longer lists."""
    tdir = trajectory_dir(run_dir)
    write_json(tdir / INDEX, dict(index))
    listed = {c["file"] for c in index["chunks"]}
    for path in tdir.glob("chunk-*.safetensors"):
        if path.name not in listed:
            path.unlink(missing_ok=True)


def write_chunk(run_dir: Path | str, seq: int, steps: Sequence[int],
                tensors: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Write one chunk file atomically; returns its index entry (the caller updates the index)."""
    name = f"chunk-{seq:06d}.safetensors"
    payload = {k: v.contiguous() for k, v in tensors.items()}
    payload[STEPS_KEY] = torch.as_tensor(list(steps), dtype=torch.int64)
    atomic_write_bytes(trajectory_dir(run_dir) / name, safetensors_bytes(payload))
    return {"file": name, "first_step": int(steps[0]), "last_step": int(steps[-1]),
            "count": len(steps)}


def read_chunk(run_dir: Path | str, entry: Mapping[str, Any],
               names: Sequence[str]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(steps, {name: (n, *shape)}) of one chunk."""
    path = trajectory_dir(run_dir) / entry["file"]
    if not path.is_file():
        raise TrajectoryError(f"{path} is listed in the trajectory index but missing")
    with safe_open(str(path), framework="pt") as fh:
        steps = fh.get_tensor(STEPS_KEY)
        return steps, {n: fh.get_tensor(n) for n in names}


def truncate(run_dir: Path | str, index: dict[str, Any], last_step: int) -> dict[str, Any]:
    """Drop every snapshot after ``last_step`` (rewriting a chunk that straddles it)."""
    kept: list[dict[str, Any]] = []
    for seq, entry in enumerate(index["chunks"]):
        if entry["last_step"] <= last_step:
            kept.append(entry)
            continue
        if entry["first_step"] <= last_step:
            steps, tensors = read_chunk(run_dir, entry, index["names"])
            keep = steps <= last_step
            kept.append(write_chunk(run_dir, seq, steps[keep].tolist(),
                                    {k: v[keep] for k, v in tensors.items()}))
        break  # chunks are in step order: everything after this one is later still
    index = {**index, "chunks": kept}
    write_index(run_dir, index)
    return index


def load_trajectory(run_dir: Path | str, *, dtype: torch.dtype = torch.float32) -> Trajectory:
    """Read a whole recorded trajectory into memory: ``(steps, matrix T x D, names, shapes)``.

    For very large models use :func:`iter_parameter_blocks` instead (one parameter at a time).
    """
    index = read_index(run_dir)
    names = list(index["names"])
    if not index["chunks"]:
        raise TrajectoryError(f"the trajectory of run {run_dir} has no snapshots yet")
    all_steps, rows = [], []
    for entry in index["chunks"]:
        steps, tensors = read_chunk(run_dir, entry, names)
        all_steps.append(steps)
        rows.append(torch.cat([tensors[n].reshape(len(steps), -1).to(dtype) for n in names], 1))
    shapes = [tuple(int(d) for d in s) for s in index["shapes"]]
    return Trajectory(torch.cat(all_steps).numpy(), torch.cat(rows), names, shapes)


def iter_parameter_blocks(
    run_dir: Path | str, *, max_elements: int = 1 << 24, dtype: torch.dtype = torch.float64
) -> Iterator[tuple[slice, torch.Tensor]]:
    """Column blocks ``(columns, T x b)`` of the trajectory matrix, about ``max_elements`` each.

    Columns follow :func:`load_trajectory`'s order. A block is a range of one parameter's leading
    dimension (output filters), read with ``get_slice`` from every chunk, so memory stays at one
    block whatever the model size (a single filter wider than ``max_elements`` is one block).
    """
    index = read_index(run_dir)
    tdir = trajectory_dir(run_dir)
    total_rows = max(1, sum(c["count"] for c in index["chunks"]))
    offset = 0
    for name, shape in zip(index["names"], index["shapes"]):
        lead = int(shape[0]) if shape else 1
        inner = int(np.prod(shape[1:])) if shape else 1
        step = max(1, max_elements // (total_rows * inner))
        for start in range(0, lead, step):
            stop = min(lead, start + step)
            parts = []
            for entry in index["chunks"]:
                with safe_open(str(tdir / entry["file"]), framework="pt") as fh:
                    view = fh.get_slice(name)
                    part = view[:, start:stop] if shape else view[:]
                parts.append(part.reshape(entry["count"], -1).to(dtype))
            yield slice(offset + start * inner, offset + stop * inner), torch.cat(parts)
        offset += lead * inner
