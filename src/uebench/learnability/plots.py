"""Figures of SAL, β and learnable layers (paper Figs. 3/11 and 5/12/13), and
:func:`save_figure`, which every learnability and multi-task figure is written with.

Every plot function draws on its own ``matplotlib.figure.Figure`` (Agg rendering, no pyplot, so
no global state and no display needed), writes it atomically with :func:`save_figure` and returns
its path. The parameter CDF (Fig. 9) is in :mod:`uebench.learnability.parameter_cdf`, the task
similarity (Fig. 4a) in :mod:`uebench.learnability.task_similarity`.

Runs are anything :func:`uebench.learnability.distance.as_named_run` accepts: a ``RunRecord``, a
``{"name", "rows"}`` mapping or a ``(name, rows)`` pair.

Colour scale of the heat maps (``scale="auto"``): SAL values of different runs and epochs often
span several decades (large early, near zero on converged or poisoned models). If the largest value
is at least 100× the 5th percentile of the positive values, a log scale from that percentile to the
maximum is used, and smaller values (zeros included) get the lowest colour; otherwise a linear
scale from the minimum to the maximum. All panels share one scale and one colour bar, so colours
compare across runs. The second panel of :func:`plot_learnable_counts` uses the same rule for its
y axis (symmetric log there, so zeros stay on the plot).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure

from uebench.learnability.distance import as_named_run, learnable_counts
from uebench.learnability.threshold import epoch_thresholds, has_sal, sal_matrix
from uebench.utils.io import atomic_write_bytes

__all__ = ["plot_learnable_counts", "plot_sal_heatmaps", "save_figure"]

_DECADES_FOR_LOG = 100.0  # max / 5th-percentile ratio from which the "auto" scale goes log


# --------------------------------------------------------------------------- helpers


def save_figure(fig: Figure, path: Path | str) -> Path:
    """Write ``fig`` to ``path`` atomically, in the format its suffix names (PNG without one)."""
    buf = io.BytesIO()  # the format follows the file name: .png, .pdf, .svg
    fig.savefig(buf, format=Path(path).suffix.lstrip(".") or "png", dpi=120, bbox_inches="tight")
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def _run_data(
    run: Any, decimals: int | None, skip_missing: bool
) -> tuple[str, np.ndarray, list[str], np.ndarray]:
    """(name, matrix, layers, epoch numbers) of one run."""
    r = as_named_run(run)
    rows = list(r.rows)
    m, layers = sal_matrix(rows, decimals=decimals, name=r.name, skip_missing=skip_missing)
    if skip_missing:
        rows = [row for row in rows if has_sal(row)]
    epochs = [row.get("epoch") for row in rows] if len(rows) == m.shape[0] else []
    if len(epochs) != m.shape[0] or not all(isinstance(e, (int, float)) for e in epochs):
        epochs = list(range(1, m.shape[0] + 1))
    return r.name, m, layers, np.asarray(epochs, dtype=np.float64)


def _norm(values: np.ndarray, scale: str) -> Normalize:
    if scale not in ("auto", "linear", "log"):
        raise ValueError(f"scale must be 'auto', 'linear' or 'log', got {scale!r}")
    vmin, vmax = float(np.min(values)), float(np.max(values))
    positive = values[values > 0]
    floor = float(np.percentile(positive, 5)) if positive.size else 0.0
    spans = floor > 0 and vmax / floor >= _DECADES_FOR_LOG
    if (scale == "log" and floor > 0 and vmax > floor) or (scale == "auto" and spans):
        # clip=True: values below the floor (zeros included) get the lowest colour
        return LogNorm(vmin=floor, vmax=vmax, clip=True)
    if vmax <= vmin:
        vmax = vmin + (abs(vmin) or 1.0)
    return Normalize(vmin=vmin, vmax=vmax)


def _auto_yscale(ax: Any, values: np.ndarray) -> None:
    positive = values[values > 0]
    if not positive.size:
        return
    floor = float(np.percentile(positive, 5))
    if float(np.max(values)) / floor >= _DECADES_FOR_LOG:
        ax.set_yscale("symlog", linthresh=floor, linscale=0.5)
        ax.set_ylim(bottom=min(0.0, float(np.min(values))))


# --------------------------------------------------------------------------- SAL heat maps


def plot_sal_heatmaps(
    runs: Sequence[Any],
    path: Path | str,
    *,
    scale: str = "auto",
    decimals: int | None = None,
    skip_missing: bool = False,
    cmap: str = "Greens",
) -> Path:
    """One layer × epoch heat map of SAL per run (paper Figs. 3 and 11), shared colour scale.

    Args:
        runs: runs to draw, one panel each, in order.
        path: the PNG to write.
        scale: ``"auto"`` (see the module docstring), ``"linear"`` or ``"log"``.
        decimals / skip_missing: as :func:`uebench.learnability.threshold.sal_matrix`.
        cmap: matplotlib colour map; darker = larger SAL with the default, as in the paper.
    """
    data = [_run_data(r, decimals, skip_missing) for r in runs]
    if not data:
        raise ValueError("plot_sal_heatmaps needs at least one run")
    norm = _norm(np.concatenate([m.ravel() for _, m, _, _ in data]), scale)
    ncols = min(len(data), 4)
    nrows = math.ceil(len(data) / ncols)
    n_layers = max(len(layers) for _, _, layers, _ in data)
    fig = Figure(figsize=(3.6 * ncols + 1.2, max(2.5, 0.18 * n_layers + 1.4) * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False, gridspec_kw={"hspace": 0.45})
    image = None
    for k, ax in enumerate(axes.ravel()):
        if k >= len(data):
            ax.set_axis_off()
            continue
        name, m, layers, epochs = data[k]
        image = ax.imshow(m.T, aspect="auto", interpolation="nearest", cmap=cmap, norm=norm,
                          extent=(epochs[0] - 0.5, epochs[-1] + 0.5, len(layers) - 0.5, -0.5))
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_yticks(range(len(layers)))
        ax.set_yticklabels(layers if k % ncols == 0 else [""] * len(layers),
                           fontsize=max(4, 8 - len(layers) // 12))
    fig.colorbar(image, ax=axes.ravel().tolist(), label="SAL", shrink=0.9)
    return save_figure(fig, path)


# --------------------------------------------------------------------------- learnable layers


def plot_learnable_counts(
    runs: Sequence[Any],
    beta: float,
    path: Path | str,
    *,
    decimals: int | None = None,
    skip_missing: bool = False,
) -> Path:
    """Learnable-layer count per epoch of every run, and how β was found (Figs. 5, 12, 13).

    Left panel: λ(epoch) = #layers with SAL > β for each run; the first run is the clean one (drawn
    thick and black); the right axis reads the same curves as proportions of layers (Fig. 13).
    Right panel: the clean run's per-layer SAL values as dots per epoch (filled = above β),
    the per-epoch 2-means midpoints and the horizontal β line (their mean, unless β was given).
    """
    data = [_run_data(r, decimals, skip_missing) for r in runs]
    if not data:
        raise ValueError("plot_learnable_counts needs at least one run (the clean run first)")
    fig = Figure(figsize=(12.5, 4.2))
    ax_count, ax_sal = fig.subplots(1, 2, gridspec_kw={"wspace": 0.35})
    n_layers = data[0][1].shape[1]
    top = 0
    for k, (name, m, _, epochs) in enumerate(data):
        counts = learnable_counts(m, beta)
        top = max(top, int(counts.max()))
        style = ({"color": "black", "linewidth": 2.4, "marker": "o", "markersize": 3, "zorder": 3}
                 if k == 0 else {"linewidth": 1.2, "alpha": 0.85})
        label = f"{name} (clean)" if k == 0 else name
        ax_count.plot(epochs, counts, label=f"{label}: #LP {counts.mean():.2f}", **style)
    ax_count.set_xlabel("epoch")
    ax_count.set_ylabel(f"learnable layers (SAL > β = {beta:.4g})")
    ax_count.set_ylim(bottom=0, top=min(n_layers, top + 1) + 0.3)
    ax_count.secondary_yaxis("right", functions=(lambda c: c / n_layers, lambda p: p * n_layers)
                             ).set_ylabel("proportion of layers")
    ax_count.legend(fontsize=7, loc="best")
    ax_count.set_title("learnable layers per epoch", fontsize=10)

    name, m, _, epochs = data[0]
    xs = np.repeat(epochs, m.shape[1])
    values = m.ravel()
    above = values > beta
    ax_sal.scatter(xs[~above], values[~above], s=9, facecolors="none", edgecolors="tab:gray",
                   linewidths=0.7, label="layer SAL ≤ β")
    ax_sal.scatter(xs[above], values[above], s=9, color="tab:green", label="layer SAL > β")
    ax_sal.plot(epochs, epoch_thresholds(m), color="tab:orange", linewidth=1.2,
                label="2-means midpoint per epoch")
    ax_sal.axhline(beta, color="tab:red", linestyle="--", linewidth=1.4, label=f"β = {beta:.4g}")
    _auto_yscale(ax_sal, values)
    ax_sal.set_xlabel("epoch")
    ax_sal.set_ylabel("SAL")
    ax_sal.set_title(f"threshold from the clean run ({name})", fontsize=10)
    ax_sal.legend(fontsize=7, loc="best")
    return save_figure(fig, path)

