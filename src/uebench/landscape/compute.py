"""``landscape(runs, out)``: loss surfaces around the final weights with the projected path.

For every run (Ye et al., ICLR 2025, arXiv 2509.08058, §3.1, Figs. 1 and 10):

1. the recorded path (``RUN/trajectory``) and a basis of directions (``pca``: the path's principal
   components, as the paper; ``random``: Li et al.'s filter-normalised directions);
2. the loss on a grid over each plane (default PC1/PC2 and PC3/PC4) centred on the final weights,
   on a fixed seeded data subset, batched over grid points (:mod:`uebench.landscape.surface`);
3. the path's coordinates in each plane, the true loss at every snapshot (``path_loss``, for
   trajectories that fit in memory), and a 1-D interpolation from the initial weights (``t = 0``)
   to the final ones (``t = 1``) (Goodfellow et al., ICLR 2015, arXiv 1412.6544).

All runs share the grid extent of each plane, so panels have the same axes and colour scale.
Results go to ``OUT/landscape.json`` (everything needed to redraw) and the figures next to it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from uebench.errors import UebenchError
from uebench.landscape.bases import BASES, Basis, BasisFn, PathSource
from uebench.landscape.directions import unflatten
from uebench.landscape.plots import plot_landscape_result
from uebench.landscape.runs import (
    LandscapeRun,
    check_same_architecture,
    load_landscape_run,
    loss_data,
)
from uebench.landscape.surface import evaluate_points, grid_coefficients
from uebench.train import rundir
from uebench.train import trajectory_store as store
from uebench.utils.io import write_json

FORMAT = "uebench-landscape/1"
RESULT_FILE = "landscape.json"
MIN_SNAPSHOTS = 3


def _load(run_dirs: Sequence[Path | str], names: Sequence[str] | None,
          dtype: torch.dtype) -> list[LandscapeRun]:
    if not run_dirs:
        raise UebenchError("landscape needs at least one run directory")
    if names is not None and len(names) != len(run_dirs):
        raise UebenchError(f"got {len(names)} names for {len(run_dirs)} runs")
    for d in run_dirs:  # fail early, before rebuilding any model
        rundir.read_config(d)
        store.read_index(d)
    runs = [load_landscape_run(d, name=names[i] if names else None, dtype=dtype)
            for i, d in enumerate(run_dirs)]
    check_same_architecture(runs)
    return runs


def _extent(coords: list[np.ndarray], minimum: float, margin: float) -> tuple[float, float]:
    """Axis range covering every path and the origin, padded by ``margin`` of its span."""
    lo = min([0.0, -minimum] + [float(c.min()) for c in coords if c.size])
    hi = max([0.0, minimum] + [float(c.max()) for c in coords if c.size])
    span = (hi - lo) or 1.0
    return lo - margin * span, hi + margin * span


def _surface(run: LandscapeRun, path: PathSource, basis: Basis, axes: tuple[int, int],
             xs: torch.Tensor, ys: torch.Tensor, data: tuple[torch.Tensor, torch.Tensor],
             opts: dict[str, Any]) -> np.ndarray:
    dtype = next(run.model.parameters()).dtype
    base = run.final(path.names)
    dirs = [unflatten(basis.directions[a].to(dtype), path.names, path.shapes) for a in axes]
    loss = evaluate_points(run.model, base, dirs, grid_coefficients(xs, ys), *data, **opts)
    return loss.reshape(len(ys), len(xs)).numpy()


def _path_loss(run: LandscapeRun, path: PathSource, data: tuple[torch.Tensor, torch.Tensor],
               opts: dict[str, Any]) -> np.ndarray:
    """Loss at every recorded snapshot: point i = final + 1 * (snapshot_i - final)."""
    assert path.dense is not None
    dtype = next(run.model.parameters()).dtype
    dirs = [unflatten(row.to(dtype), path.names, path.shapes) for row in path.dense]
    coeffs = torch.eye(len(dirs), dtype=torch.float64)
    return evaluate_points(run.model, run.final(path.names), dirs, coeffs, *data, **opts).numpy()


def _interpolation(run: LandscapeRun, ts: torch.Tensor, data: tuple[torch.Tensor, torch.Tensor],
                   opts: dict[str, Any]) -> np.ndarray:
    """Loss along ``init + t (final - init)`` over every parameter."""
    names = list(run.init)
    final = run.final(names)
    direction = {n: final[n] - run.init[n] for n in names}
    return evaluate_points(run.model, run.init, [direction], ts[:, None], *data, **opts).numpy()


def landscape(
    runs: Sequence[Path | str],
    out: Path | str,
    *,
    names: Sequence[str] | None = None,
    basis: str = "pca",
    planes: Sequence[tuple[int, int]] = ((0, 1), (2, 3)),
    grid: int = 21,
    margin: float = 0.15,
    data: str = "train",
    n_samples: int = 1000,
    seed: int = 0,
    batch_size: int = 256,
    memory_mb: float = 64.0,
    interpolation_points: int = 31,
    dtype: torch.dtype = torch.float32,
    plot: bool = True,
) -> dict[str, Any]:
    """Compute (and draw) the loss landscapes of runs recorded with a trajectory.

    Args:
        runs: run directories (``config.yaml``, ``checkpoint.pt``, ``trajectory/``) of one
            architecture, clean run first by convention.
        out: output directory for ``landscape.json`` and the figures.
        names: panel titles (default: the directory names).
        basis: ``pca`` (paper) or ``random`` (filter-normalised; :data:`BASES`).
        planes: pairs of 0-based direction indices; ``(0, 1)`` = PC1/PC2.
        grid: points per axis (``grid**2`` loss evaluations per plane and run).
        margin: padding of the grid around the paths, as a fraction of their span.
        data: ``train`` (each run's own, poisoned, training set), ``clean`` or ``test``.
        n_samples: size of the fixed loss-evaluation subset (seeded by ``seed``).
        batch_size, memory_mb: evaluation batch and per-chunk memory budget.
        interpolation_points: points of the init -> final line, ``t`` in [-0.25, 1.25] (0 = off).
        dtype: evaluation precision.
        plot: also write the figures (:func:`uebench.landscape.plots.plot_landscape_result`).

    Returns:
        The stored result (as ``landscape.json``), with ``files`` when plotted.
    """
    basis_fn = BASES.get(basis)  # an unknown name fails before any run is loaded
    loaded = _load(runs, names, dtype)
    paths = [PathSource(run) for run in loaded]
    for run, path in zip(loaded, paths):
        if path.rows < MIN_SNAPSHOTS:
            raise UebenchError(f"run {run.path} has {path.rows} trajectory snapshot(s); the "
                               f"landscape needs at least {MIN_SNAPSHOTS}")
    bases, usable, notes = _bases(basis_fn, loaded, paths, planes, seed)
    rows = [_run_row(r, p, b) for r, p, b in zip(loaded, paths, bases)]
    data_sets = [loss_data(run, data, n_samples, seed) for run in loaded]
    opts = {"batch_size": batch_size, "memory_mb": memory_mb}
    plane_info = [_plane(p, loaded, paths, bases, rows, data_sets, grid=grid, margin=margin,
                         opts=opts) for p in usable]
    for run, path, row, subset in zip(loaded, paths, rows, data_sets):
        row.update(_line_losses(run, path, subset, opts, interpolation_points))
    result = {"format": FORMAT, "basis": basis, "data": data, "n_samples": n_samples,
              "seed": seed, "grid": grid, "planes": plane_info, "runs": rows, "notes": notes}
    out = Path(out)
    write_json(out / RESULT_FILE, result)
    if plot:
        result["files"] = [str(f) for f in plot_landscape_result(result, out)]
    return result


def _bases(basis_fn: BasisFn, runs: Sequence[LandscapeRun], paths: Sequence[PathSource],
           planes: Sequence[tuple[int, int]], seed: int
           ) -> tuple[list[Basis], list[tuple[int, int]], list[str]]:
    """Each run's basis with as many directions as the planes need, the planes every basis
    spans, and a note for each plane skipped."""
    count = max(max(p) for p in planes) + 1
    bases = [basis_fn(run, path, count, seed) for run, path in zip(runs, paths)]
    usable = [tuple(p) for p in planes if all(max(p) < len(b.directions) for b in bases)]
    notes = [f"plane {tuple(p)} skipped: a run has fewer than {max(p) + 1} directions (its "
             "path spans fewer dimensions)" for p in planes if tuple(p) not in usable]
    return bases, usable, notes


def _line_losses(run: LandscapeRun, path: PathSource, data: tuple[torch.Tensor, torch.Tensor],
                 opts: dict[str, Any], interpolation_points: int) -> dict[str, Any]:
    """The losses of one run off the planes: at the final weights, at every recorded snapshot
    (trajectories that fit in memory) and along the init -> final line."""
    centre = evaluate_points(run.model, run.final(path.names), [], torch.zeros(1, 0), *data,
                             **opts)
    found: dict[str, Any] = {"final_loss": float(centre[0])}
    if path.dense is not None:  # the true loss at every snapshot (not its projection)
        found["path_loss"] = _path_loss(run, path, data, opts).tolist()
    if interpolation_points:
        ts = torch.linspace(-0.25, 1.25, interpolation_points, dtype=torch.float64)
        found["interpolation"] = {"t": ts.tolist(),
                                  "loss": _interpolation(run, ts, data, opts).tolist()}
    return found


def _plane(axes: tuple[int, int], runs: Sequence[LandscapeRun], paths: Sequence[PathSource],
           bases: Sequence[Basis], rows: Sequence[dict[str, Any]],
           data_sets: Sequence[tuple[torch.Tensor, torch.Tensor]], *, grid: int, margin: float,
           opts: dict[str, Any]) -> dict[str, Any]:
    """Path coordinates and loss surfaces of every run in one plane (appended to ``rows``)."""
    coords = [path.project([b.directions[a] for a in axes]) for path, b in zip(paths, bases)]
    ranges = [_extent([c[:, i] for c in coords], bases[0].min_extent, margin) for i in (0, 1)]
    xs, ys = (torch.linspace(lo, hi, grid, dtype=torch.float64) for lo, hi in ranges)
    for run, path, b, row, c, subset in zip(runs, paths, bases, rows, coords, data_sets):
        t0 = time.perf_counter()
        loss = _surface(run, path, b, axes, xs, ys, subset, opts)
        row["planes"].append({"axes": list(axes), "coords": c.tolist(), "loss": loss.tolist()})
        row["seconds"] += time.perf_counter() - t0
    return {"axes": list(axes), "xs": xs.tolist(), "ys": ys.tolist()}


def _run_row(run: LandscapeRun, path: PathSource, basis: Basis) -> dict[str, Any]:
    explained = None if basis.explained is None else basis.explained.tolist()
    return {"name": run.name, "path": str(run.path), "model": run.cfg.model.name,
            "dataset": run.cfg.data.name, "poison": run.cfg.poison,
            "parameters": path.names, "numel": path.shape[1], "steps": path.steps.tolist(),
            "labels": basis.labels, "explained_variance_ratio": explained, "planes": [],
            "seconds": 0.0}
