"""Landscape figures (paper Figs. 1 and 10) drawn from a stored ``landscape.json``, and the house
figure style shared by every figure ``uebench plot`` writes.

Every function draws on its own ``matplotlib.figure.Figure`` (Agg, no pyplot: no global state,
no display) inside :func:`style`, and writes each requested format (PNG and PDF by default)
atomically. Panels of one plane share axes and one colour scale, so a clean run and its UEs
compare at a glance; contour levels are log-spaced when losses span more than a decade.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, NullFormatter

from uebench.utils.io import atomic_write_bytes

FORMATS = ("png", "pdf")
STYLE: dict[str, Any] = {
    "font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8,
    "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.grid": False, "figure.dpi": 120,
    "savefig.dpi": 150, "image.cmap": "viridis", "pdf.fonttype": 42,
}
PANEL = 3.4  # inches per panel side


@contextmanager
def style() -> Iterator[None]:
    """The house style (fonts, dpi, TrueType in PDFs) for figures created inside the block."""
    with matplotlib.rc_context(STYLE):
        yield


def save_figure(fig: Figure, stem: Path | str, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write ``stem.<fmt>`` for each format, atomically; returns the paths."""
    paths = []
    for fmt in formats:
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, bbox_inches="tight")
        path = Path(f"{stem}.{fmt}")
        atomic_write_bytes(path, buf.getvalue())
        paths.append(path)
    return paths


def loss_norm(values: np.ndarray, count: int = 31) -> tuple[Normalize, np.ndarray]:
    """A shared colour scale and ``count`` contour levels: log-spaced if losses span > 10x."""
    finite = values[np.isfinite(values)]
    lo, hi = float(finite.min()), float(finite.max())
    if lo > 0 and hi / lo > 10:
        return LogNorm(lo, hi), np.geomspace(lo, hi, count)
    hi = hi if hi > lo else lo + 1e-6
    return Normalize(lo, hi), np.linspace(lo, hi, count)


def _axis_label(run: Mapping[str, Any], axis: int) -> str:
    label = run["labels"][axis]
    ratio = run.get("explained_variance_ratio")
    return f"{label} ({100 * ratio[axis]:.1f} %)" if ratio else label


def _panel(ax: Any, run: Mapping[str, Any], plane: Mapping[str, Any], entry: Mapping[str, Any],
           norm: Normalize, levels: np.ndarray) -> Any:
    xs, ys = np.asarray(plane["xs"]), np.asarray(plane["ys"])
    loss = np.asarray(entry["loss"])
    filled = ax.contourf(xs, ys, loss, levels=levels, norm=norm, extend="both")
    ax.contour(xs, ys, loss, levels=levels, norm=norm, colors="k", linewidths=0.4, alpha=0.5)
    path = np.asarray(entry["coords"])
    steps = np.asarray(run["steps"], dtype=float)
    ax.plot(path[:, 0], path[:, 1], color="white", linewidth=2.2, alpha=0.8)
    ax.plot(path[:, 0], path[:, 1], color="tab:red", linewidth=1.0)
    ax.scatter(path[:, 0], path[:, 1], c=steps, cmap="autumn", s=6, zorder=3)
    ax.plot(path[0, 0], path[0, 1], "o", color="white", markeredgecolor="k", markersize=6,
            label="init")
    ax.plot(0.0, 0.0, "*", color="gold", markeredgecolor="k", markersize=11, label="final")
    ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(ys[0], ys[-1])
    a, b = entry["axes"]
    ax.set_xlabel(_axis_label(run, a))
    ax.set_ylabel(_axis_label(run, b))
    ax.set_title(run["name"])
    return filled


def plot_plane(result: Mapping[str, Any], plane_index: int, stem: Path | str,
               formats: Sequence[str] = FORMATS) -> list[Path]:
    """One panel per run for plane ``plane_index`` of a landscape result (shared axes, scale)."""
    plane = result["planes"][plane_index]
    runs = result["runs"]
    entries = [r["planes"][plane_index] for r in runs]
    norm, levels = loss_norm(np.concatenate([np.ravel(e["loss"]) for e in entries]))
    with style():
        fig = Figure(figsize=(PANEL * len(runs) + 1.0, PANEL))
        axes = np.atleast_1d(fig.subplots(1, len(runs), sharex=True, sharey=True))
        filled = None
        for ax, run, entry in zip(axes, runs, entries):
            filled = _panel(ax, run, plane, entry, norm, levels)
        axes[0].legend(loc="upper left", framealpha=0.8)
        bar = fig.colorbar(filled, ax=list(axes), label=f"loss ({result['data']} subset)",
                           shrink=0.9)
        bar.set_ticks(levels[::5])
        bar.ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
        bar.ax.yaxis.set_minor_formatter(NullFormatter())
        return save_figure(fig, stem, formats)


def _loss_lines(result: Mapping[str, Any], stem: Path | str, formats: Sequence[str],
                lines: list[tuple[str, Sequence[float], Sequence[float]]], xlabel: str,
                marks: Sequence[float] = ()) -> list[Path]:
    """One loss curve per ``(name, xs, losses)``; log y axis if the losses span > 10x."""
    with style():
        fig = Figure(figsize=(5.0, 3.4))
        ax = fig.subplots()
        values = [v for _, _, loss in lines for v in loss]
        for name, xs, loss in lines:
            ax.plot(xs, loss, label=name)
        for x in marks:
            ax.axvline(x, color="gray", linewidth=0.6, linestyle=":")
        if values and min(values) > 0 and max(values) / min(values) > 10:
            ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"loss ({result['data']} subset)")
        ax.legend()
        return save_figure(fig, stem, formats)


def plot_interpolation(result: Mapping[str, Any], stem: Path | str,
                       formats: Sequence[str] = FORMATS) -> list[Path]:
    """Loss along the straight line from the initial (t=0) to the final (t=1) weights."""
    lines = [(r["name"], r["interpolation"]["t"], r["interpolation"]["loss"])
             for r in result["runs"] if r.get("interpolation")]
    return _loss_lines(result, stem, formats, lines,
                       "t  (0 = initial weights, 1 = final weights)", marks=(0.0, 1.0))


def plot_path_loss(result: Mapping[str, Any], stem: Path | str,
                   formats: Sequence[str] = FORMATS) -> list[Path]:
    """The true loss at every recorded snapshot against the optimiser step, one line per run."""
    lines = [(r["name"], r["steps"], r["path_loss"]) for r in result["runs"]
             if r.get("path_loss")]
    return _loss_lines(result, stem, formats, lines, "optimiser step")


def plot_explained_variance(result: Mapping[str, Any], stem: Path | str,
                            formats: Sequence[str] = FORMATS, components: int = 10) -> list[Path]:
    """Explained-variance ratio of the first PCA components of each run's path (App. A.4)."""
    with style():
        fig = Figure(figsize=(5.0, 3.4))
        ax = fig.subplots()
        for run in result["runs"]:
            ratio = np.asarray(run.get("explained_variance_ratio") or [])[:components]
            if ratio.size:
                ks = np.arange(1, ratio.size + 1)
                ax.plot(ks, np.cumsum(ratio), marker="o", markersize=3,
                        label=f"{run['name']} (PC1+PC2 {100 * ratio[:2].sum():.1f} %)")
        ax.set_xlabel("number of components")
        ax.set_ylabel("cumulative explained variance")
        ax.set_ylim(0, 1.02)
        ax.legend()
        return save_figure(fig, stem, formats)


def plot_landscape_result(result: Mapping[str, Any], out: Path | str,
                          formats: Sequence[str] = FORMATS) -> list[Path]:
    """Every figure a landscape result supports, written into ``out``."""
    out = Path(out)
    files: list[Path] = []
    for k, plane in enumerate(result["planes"]):
        labels = "_".join(result["runs"][0]["labels"][a].lower() for a in plane["axes"])
        files += plot_plane(result, k, out / f"landscape_{result['basis']}_{labels}", formats)
    if any(r.get("interpolation") for r in result["runs"]):
        files += plot_interpolation(result, out / "interpolation", formats)
    if any(r.get("path_loss") for r in result["runs"]):
        files += plot_path_loss(result, out / "path_loss", formats)
    if any(r.get("explained_variance_ratio") for r in result["runs"]):
        files += plot_explained_variance(result, out / "explained_variance", formats)
    return files
