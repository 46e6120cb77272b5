"""``plot_all(DIR)``: regenerate every figure a run or evaluation directory supports.

``DIR`` is one run directory (``config.yaml`` + ``metrics.jsonl``/``checkpoint.pt``), or a
directory of runs (``DIR/runs/<name>/`` as ``uebench evaluate`` and the landscape experiments
write, or run directories directly under ``DIR``). From stored data only, nothing is retrained:

==========================  ================================================  ===============
figure                      needs                                             drawn by
==========================  ================================================  ===============
sal_heatmaps                per-epoch SAL in metrics.jsonl                    learnability
learnable_counts            SAL, >= 2 runs; β from results.json or the clean  learnability
parameter_cdf               checkpoint.pt, one architecture                   learnability
parameter_cdf_layers        checkpoint.pt, one architecture                   landscape.cdf
landscape_* etc.            trajectory/ (+ cached landscape.json)             landscape.plots
==========================  ================================================  ===============

Landscape surfaces are loss evaluations (no training); they are computed once and cached in
``OUT/landscape.json`` (``compute_landscape=False`` only redraws a cache). Each figure is
written as PNG and PDF (see :data:`uebench.landscape.plots.FORMATS`) in the house style.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from uebench.errors import UebenchError
from uebench.landscape.cdf import plot_layer_cdfs
from uebench.landscape.compute import RESULT_FILE, landscape
from uebench.landscape.plots import FORMATS, plot_landscape_result, style
from uebench.landscape.runs import read_final_state
from uebench.learnability.parameter_cdf import plot_parameter_cdf
from uebench.learnability.plots import plot_learnable_counts, plot_sal_heatmaps
from uebench.learnability.threshold import has_sal, learnable_threshold
from uebench.train import rundir
from uebench.train.run_record import load_run
from uebench.train.rundir import is_run_dir
from uebench.train.trajectory_store import has_trajectory
from uebench.utils.io import write_json


def find_runs(directory: Path | str) -> list[tuple[str, Path]]:
    """``(name, path)`` of the runs in ``directory``; the clean run first.

    Order: as in ``results.json`` when present, else ``clean`` first and then by name.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise UebenchError(f"{directory} does not exist or is not a directory")
    if is_run_dir(directory):
        return [(directory.name, directory)]
    parent = directory / "runs" if (directory / "runs").is_dir() else directory
    runs = {p.name: p for p in sorted(parent.iterdir()) if p.is_dir() and is_run_dir(p)}
    if not runs:
        raise UebenchError(f"{directory} holds no run directories (a run has config.yaml and "
                           "metrics.jsonl or checkpoint.pt; an evaluation has runs/<name>/)")
    order = [r.get("name") for r in _results(directory).get("runs", [])]
    ranked = sorted(runs, key=lambda n: (n not in order, order.index(n) if n in order else 0,
                                         n != "clean", n))
    return [(n, runs[n]) for n in ranked]


def _results(directory: Path) -> dict[str, Any]:
    path = directory / "results.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UebenchError(f"{path} is not valid JSON ({exc.msg})") from exc
    return data if isinstance(data, dict) else {}


def _learnability_figure(draw: Callable[[Path], Path], stem: Path, formats: Sequence[str],
                         report: dict[str, Any]) -> None:
    """Draw a learnability.plots figure once per format (the file name picks the format)."""
    for fmt in formats:
        report["files"].append(str(draw(Path(f"{stem}.{fmt}"))))


def _sal_figures(runs: Sequence[tuple[str, Path]], directory: Path, out: Path,
                 formats: Sequence[str], report: dict[str, Any]) -> None:
    records = [load_run(p, name=n, require_complete=False) for n, p in runs
               if (p / rundir.METRICS).is_file()]
    records = [r for r in records if any(has_sal(row) for row in r.rows)]
    if not records:
        report["skipped"]["sal_heatmaps"] = "no run has per-epoch SAL in metrics.jsonl"
        return
    _learnability_figure(lambda p: plot_sal_heatmaps(records, p, skip_missing=True),
                         out / "sal_heatmaps", formats, report)
    if len(records) < 2:
        report["skipped"]["learnable_counts"] = "needs a clean run and at least one other"
        return
    beta = _results(directory).get("beta")
    if beta is None:
        beta = learnable_threshold([row for row in records[0].rows if has_sal(row)],
                                   name=records[0].name)
    _learnability_figure(lambda p: plot_learnable_counts(records, float(beta), p,
                                                         skip_missing=True),
                         out / "learnable_counts", formats, report)


def _cdf_figures(runs: Sequence[tuple[str, Path]], out: Path, formats: Sequence[str],
                 report: dict[str, Any]) -> None:
    states = {n: read_final_state(p) for n, p in runs if (p / rundir.CHECKPOINT).is_file()}
    if not states:
        report["skipped"]["parameter_cdf"] = "no run has checkpoint.pt"
        return
    shapes = {n: {k: tuple(v.shape) for k, v in s.items()} for n, s in states.items()}
    if len({json.dumps(sorted(s.items())) for s in shapes.values()}) > 1:
        report["skipped"]["parameter_cdf"] = f"runs {sorted(states)} differ in architecture"
        return
    _learnability_figure(lambda p: plot_parameter_cdf(states, p), out / "parameter_cdf",
                         formats, report)
    report["files"] += [str(f) for f in plot_layer_cdfs(states, out / "parameter_cdf_layers",
                                                         formats=formats)]


def _landscape_figures(runs: Sequence[tuple[str, Path]], out: Path, formats: Sequence[str],
                       compute: bool, options: Mapping[str, Any],
                       report: dict[str, Any]) -> None:
    recorded = [(n, p) for n, p in runs if has_trajectory(p)]
    if not recorded:
        report["skipped"]["landscape"] = "no run has a trajectory/ (recorded path)"
        return
    cache = out / RESULT_FILE
    wanted = [str(p) for _, p in recorded]
    if cache.is_file():
        result = json.loads(cache.read_text(encoding="utf-8"))
        if [r["path"] for r in result["runs"]] == wanted:
            report["files"] += [str(f) for f in plot_landscape_result(result, out, formats)]
            return
    if not compute:
        report["skipped"]["landscape"] = f"no cached {RESULT_FILE} for these runs"
        return
    result = landscape([p for _, p in recorded], out, names=[n for n, _ in recorded],
                       plot=False, **dict(options))
    report["files"] += [str(f) for f in plot_landscape_result(result, out, formats)]


def plot_all(directory: Path | str, *, out: Path | str | None = None,
             formats: Sequence[str] = FORMATS, compute_landscape: bool = True,
             landscape_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write every figure ``directory`` supports into ``out`` (default ``directory/figures``).

    Args:
        directory: a run directory or a directory of runs (see the module docstring).
        out: where the figures go.
        formats: file formats per figure.
        compute_landscape: compute missing landscape surfaces (loss evaluations, no training).
        landscape_options: keyword arguments for :func:`uebench.landscape.landscape`
            (``grid``, ``n_samples``, ``basis``, ...).

    Returns:
        ``{"files": [...], "skipped": {figure: reason}}``, also written to ``out/figures.json``.
    """
    directory = Path(directory)
    runs = find_runs(directory)
    out = Path(out) if out is not None else directory / "figures"
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"runs": [str(p) for _, p in runs], "files": [], "skipped": {}}
    with style():
        _sal_figures(runs, directory, out, formats, report)
        _cdf_figures(runs, out, formats, report)
        _landscape_figures(runs, out, formats, compute_landscape, landscape_options or {},
                           report)
    write_json(out / "figures.json", report)
    return report
