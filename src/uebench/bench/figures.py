"""Figures of a check: the headline statistic against the control and the accuracy drop per cell,
with their 95 % intervals, and per setting the SAL heat maps and learnable-layer counts of the
paper (Figs. 3 and 5, via :mod:`uebench.learnability.plots`)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from uebench.learnability.statistics import STATISTICS
from uebench.train.run_record import load_run
from uebench.utils.io import atomic_write_bytes

VERDICT_COLOURS = {"protected": "tab:green", "accuracy only": "tab:orange",
                   "not protected": "tab:red", "inconclusive": "tab:gray"}


def _errors(summaries: Sequence[Mapping[str, Any]], scale: float) -> tuple[list[float], Any]:
    means, low, high = [], [], []
    for s in summaries:
        m = (s.get("mean") or 0.0) * scale
        means.append(m)
        lo = s.get("ci_low")
        hi = s.get("ci_high")
        low.append(0.0 if lo is None else m - lo * scale)
        high.append(0.0 if hi is None else hi * scale - m)
    return means, [low, high]


def plot_overview(rows: Sequence[Mapping[str, Any]], path: Path, *, min_drop: float,
                  headline: str) -> Path:
    """Two panels of horizontal bars, one bar per checked cell, coloured by verdict: the headline
    statistic's paired difference from the control, and the accuracy drop."""
    from matplotlib.figure import Figure

    info = STATISTICS.get(headline)
    labels = [r["label"] for r in rows]
    colours = [VERDICT_COLOURS[r["verdict"]] for r in rows]
    fig = Figure(figsize=(11, 0.45 * len(rows) + 1.6))
    ax_stat, ax_drop = fig.subplots(1, 2, sharey=True, gridspec_kw={"wspace": 0.08})
    ys = list(range(len(rows)))
    side = "lower" if info.less == "lower" else "higher"
    for ax, summaries, scale, line, title in (
        (ax_stat, [r.get("paired", {}).get(headline) or {} for r in rows], info.scale, 0.0,
         f"{info.label}: protected − control ({side} = less learnable)"),
        (ax_drop, [r["drop"] for r in rows], 100.0, 100 * min_drop,
         "test-accuracy drop (points)"),
    ):
        means, err = _errors(summaries, scale)
        ax.barh(ys, means, xerr=err, color=colours, capsize=3, alpha=0.85)
        ax.axvline(line, color="black", linestyle="--", linewidth=1)
        ax.set_title(title, fontsize=10)
    ax_stat.set_yticks(ys)
    ax_stat.set_yticklabels(labels, fontsize=8)
    ax_stat.invert_yaxis()
    handles = [_patch(c, v) for v, c in VERDICT_COLOURS.items()]
    ax_drop.legend(handles=handles, fontsize=7, loc="lower right")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return path


def _patch(colour: str, label: str) -> Any:
    from matplotlib.patches import Patch

    return Patch(color=colour, label=label)


def setting_figures(runs: Sequence[tuple[str, Path]], beta: float, folder: Path,
                    stem: str) -> list[tuple[Path, str]]:
    """SAL heat maps and learnable counts of one setting's runs (the β run first)."""
    from uebench.learnability.plots import (  # lazy: matplotlib
        plot_learnable_counts,
        plot_sal_heatmaps,
    )

    records = [load_run(path, name=name) for name, path in runs]
    heat = plot_sal_heatmaps(records, folder / f"{stem}_sal.png")
    counts = plot_learnable_counts(records, beta, folder / f"{stem}_learnable.png")
    return [(heat, "SAL per layer and epoch (darker = larger)"),
            (counts, f"learnable layers per epoch, β = {beta:.4g} from the clean run")]
