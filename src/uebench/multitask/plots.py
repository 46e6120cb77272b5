"""Multi-task figures: task SAL similarity (paper Fig. 4a), learnable proportions per task with
UD (Fig. 4b) and the cross-task matrix (Fig. 8). Drawn from stored results only.

:func:`plot_multitask` regenerates every figure a directory supports (a multi-task evaluation,
a cross-task matrix or a single multi-task run); ``uebench plot`` can call it. Figures are drawn
on their own ``Figure`` (Agg, no pyplot state) and written atomically; the file name's suffix
picks the format.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from uebench.errors import UebenchError
from uebench.learnability.plots import save_figure
from uebench.multitask.config import is_multitask_run
from uebench.multitask.report import multitask_report

FORMATS = ("png",)


def _annotated(ax: Any, matrix: np.ndarray, text: Sequence[Sequence[str]], **imshow: Any) -> Any:
    image = ax.imshow(np.ma.masked_invalid(matrix), **imshow)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, text[i][j], ha="center", va="center", fontsize=7)
    return image


def plot_task_similarity_runs(result: Mapping[str, Any], path: Path | str) -> Path:
    """Fig. 4a: per run, the epoch-mean cosine similarity of tasks' SAL over shared layers."""
    runs = result["runs"]
    fig = Figure(figsize=(3.3 * len(runs) + 1.6, 3.4))
    axes = fig.subplots(1, len(runs), squeeze=False, gridspec_kw={"wspace": 0.15})[0]
    image = None
    for k, (ax, run) in enumerate(zip(axes, runs)):
        sim = run["similarity"]
        m = np.array(sim["mean"], dtype=float)
        text = [["–" if not math.isfinite(v) else f"{v:.2f}" for v in r] for r in m]
        image = _annotated(ax, m, text, cmap="viridis", vmin=min(0.0, np.nanmin(m)), vmax=1.0)
        ax.set_xticks(range(len(sim["tasks"])))
        ax.set_xticklabels(sim["tasks"], rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(sim["tasks"])))
        ax.set_yticklabels(sim["tasks"] if k == 0 else [], fontsize=8)
        ax.set_title(f"{run['name']} ({len(sim['layers'])} shared layers)", fontsize=9)
    fig.colorbar(image, ax=list(axes), label="cosine similarity of SAL (mean over epochs)")
    return save_figure(fig, path)


def _smooth(values: Sequence[float], window: int) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    if window <= 1 or v.size < window:
        return v
    kernel = np.ones(window) / window
    padded = np.concatenate([np.full(window // 2, v[0]), v, np.full(window - 1 - window // 2,
                                                                     v[-1])])
    return np.convolve(padded, kernel, mode="valid")


def _spread(labels: list[list[Any]], gap: float) -> list[list[Any]]:
    """End-of-line labels ``[y, ...]`` moved apart to at least ``gap`` (bottom to top)."""
    labels = sorted(labels, key=lambda item: item[0])
    for below, above in zip(labels, labels[1:]):
        above[0] = max(above[0], below[0] + gap)
    return labels


def plot_task_learnable(result: Mapping[str, Any], path: Path | str, *,
                        smooth: int = 3) -> Path:
    """Fig. 4b: per run, each task's learnable proportion per epoch (moving average of
    ``smooth`` epochs, raw values as dots), UD of the task at the end of its line."""
    runs, tasks = result["runs"], result["tasks"]
    fig = Figure(figsize=(4.2 * len(runs), 3.6))
    axes = fig.subplots(1, len(runs), squeeze=False, sharey=True)[0]
    colours = [f"C{k}" for k in range(len(tasks))]
    for ax, run in zip(axes, runs):
        labels = []
        for task, colour in zip(tasks, colours):
            info = run["per_task"][task]
            raw = info["proportion_per_epoch"]
            epochs = np.arange(1, len(raw) + 1)
            line = _smooth(raw, smooth)
            ax.plot(epochs, line, color=colour, label=task)
            ax.scatter(epochs, raw, color=colour, s=6, alpha=0.5)
            if info["ud"] is not None:
                labels.append([float(line[-1]), f"UD {info['ud']:.2f}", colour, epochs[-1]])
        for y, text, colour, x in _spread(labels, gap=0.06):
            ax.annotate(text, (x, y), fontsize=7, color=colour, xytext=(3, 0),
                        textcoords="offset points", va="center")
        ax.set_title(f"{run['name']} ({run['role']})", fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylim(-0.02, 1.05)
    axes[0].set_ylabel("learnable proportion (SAL > β_task)")
    axes[0].legend(fontsize=7, loc="best")
    return save_figure(fig, path)


def plot_cross_task(table: Mapping[str, Any], path: Path | str) -> Path:
    """Fig. 8: poisoned − clean per (poison, target task metric); colour = harm relative to the
    clean value (red: worse than clean, blue: better), text = the raw difference."""
    cols, rows = table["columns"], table["rows"]
    harm = np.full((len(rows), len(cols)), np.nan)
    text = [["–"] * len(cols) for _ in rows]
    for i, row in enumerate(rows):
        for j, c in enumerate(cols):
            cell = row["cells"][c["key"]]
            if cell["harm"] is not None and cell["clean"]:
                harm[i, j] = cell["harm"] / abs(cell["clean"])
                text[i][j] = f"{cell['diff']:+.3f}"
    limit = float(np.nanmax(np.abs(harm))) if np.isfinite(harm).any() else 1.0
    fig = Figure(figsize=(1.1 * len(cols) + 2.5, 0.55 * len(rows) + 2.2))
    ax = fig.subplots()
    image = _annotated(ax, harm, text, cmap="RdBu_r", aspect="auto",
                       norm=TwoSlopeNorm(0.0, -max(limit, 1e-9), max(limit, 1e-9)))
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels([f"{c['task']}\n{c['metric']}{' ↑' if c['higher_is_better'] else ' ↓'}"
                        for c in cols], fontsize=7)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([r["poison"] for r in rows], fontsize=8)
    ax.set_xlabel("model trained for")
    ax.set_ylabel("poison made for")
    fig.colorbar(image, ax=ax, label="harm relative to clean (red = worse)")
    return save_figure(fig, path)


def _single_run_result(run_dir: Path) -> dict[str, Any]:
    """A one-run 'evaluation' (β from the run itself) so Fig. 4 can be drawn for any run."""
    return multitask_report(run_dir, [])


def supports(directory: Path | str) -> bool:
    """Whether :func:`plot_multitask` has something to draw for ``directory`` (a multi-task
    evaluation, a cross-task matrix or a multi-task run): ``uebench plot`` asks this first."""
    directory = Path(directory)
    return _stored(directory)[0] is not None or is_multitask_run(directory)


def plot_multitask(directory: Path | str, *, out: Path | str | None = None,
                   formats: Sequence[str] = FORMATS) -> dict[str, Any]:
    """Every multi-task figure ``directory`` supports, into ``out`` (default DIR/figures).

    A multi-task evaluation (``results.json`` of kind ``multitask-evaluation``): Fig. 4a and 4b;
    a cross-task matrix (kind ``cross-task``): Fig. 8; a multi-task run with per-task SAL:
    Fig. 4a/4b of that run alone. Returns ``{"files": [...], "skipped": {figure: reason}}``.
    """
    directory = Path(directory)
    out = Path(out) if out is not None else directory / "figures"
    report: dict[str, Any] = {"files": [], "skipped": {}}
    kind, result = _stored(directory)
    draws: list[tuple[str, Any]] = []
    if kind == "cross-task":
        draws = [("cross_task", lambda p: plot_cross_task(result, p))]
    elif kind == "multitask-evaluation" or is_multitask_run(directory):
        try:
            result = result if kind else _single_run_result(directory)
        except UebenchError as exc:
            report["skipped"]["task_similarity"] = str(exc)
            return report
        draws = [("task_similarity", lambda p: plot_task_similarity_runs(result, p)),
                 ("task_learnable", lambda p: plot_task_learnable(result, p))]
    else:
        report["skipped"]["multitask"] = "not a multi-task run, evaluation or cross-task matrix"
    for stem, draw in draws:
        for fmt in formats:
            report["files"].append(str(draw(out / f"{stem}.{fmt}")))
    return report


def _stored(directory: Path) -> tuple[str | None, dict[str, Any]]:
    path = directory / "results.json"
    if not path.is_file():
        return None, {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UebenchError(f"{path} is not valid JSON ({exc.msg})") from exc
    kind = data.get("kind") if isinstance(data, dict) else None
    return (kind, data) if kind in ("cross-task", "multitask-evaluation") else (None, {})
