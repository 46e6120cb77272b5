"""The validation study as one figure (``uebench validate --figure``): per statistic, every run's
paired difference from its control (mean and 95 % t-interval over the seeds) across the study's
settings. Where the settings differ in exactly one numeric axis (the data-size study's
``train_size``, the ratio study's ``poison_ratio``), that axis is the x axis, so the figure
answers "does the separation appear as the axis grows?"; otherwise each setting is one position.
The second draw of a control (``control-b``) is drawn in grey: its interval should cover 0.
A filled point is separated from its control (the verdict's one-sided rule), a hollow one is not.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from uebench.errors import UebenchError
from uebench.learnability.statistics import STATISTICS
from uebench.utils.io import atomic_write_bytes

DEFAULT_PANELS = ("acc", "ud", "sal_ratio")


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def sweep_axis(effects: Sequence[Mapping[str, Any]]) -> str | None:
    """The one axis whose value differs between the effects' settings, if it is numeric."""
    axes = [dict(e.get("axes") or {}) for e in effects]
    keys = sorted({k for a in axes for k in a})
    varying = [k for k in keys if len({str(a.get(k)) for a in axes}) > 1]
    if len(varying) != 1:
        return None
    if any(_number(a.get(varying[0])) is None for a in axes):
        return None
    return varying[0]


def _positions(effects: Sequence[Mapping[str, Any]], settings: Sequence[str],
               axis: str | None) -> tuple[list[float], list[float], list[str], bool]:
    """x of every effect, the tick positions and labels, and whether the axis is logarithmic."""
    if axis is None:
        present = {e["setting"] for e in effects}
        order = {s: i for i, s in enumerate(s for s in settings if s in present)}
        return ([float(order[e["setting"]]) for e in effects], [float(i) for i in order.values()],
                list(order), False)
    xs = [float(_number(e["axes"][axis]) or 0.0) for e in effects]
    ticks = sorted(set(xs))
    # counts (data sizes) read best on a log axis, shares (0..1) on a linear one
    log = min(ticks) >= 1 and max(ticks) / min(ticks) >= 4
    return xs, ticks, [f"{t:g}" for t in ticks], log


def plot_effects(result: Mapping[str, Any], path: Path | str, *,
                 statistics: Sequence[str] | None = None) -> Path:
    """Draw the paired effects of a :func:`uebench.bench.validation.validate` result (or the
    ``values`` of its stored JSON) into ``path`` (PNG); one panel per statistic, default
    accuracy, UD and the SAL ratio where the result has them."""
    fig = effects_figure(result, statistics)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def effects_figure(result: Mapping[str, Any], statistics: Sequence[str] | None = None) -> Any:
    """The matplotlib Figure of :func:`plot_effects` (one error-bar series per run − control
    pair and panel, in display units: points for accuracies)."""
    from matplotlib.figure import Figure

    names = list(statistics or [n for n in DEFAULT_PANELS if n in result["statistics"]])
    unknown = [n for n in names if n not in result["statistics"]]
    if unknown or not names:
        raise UebenchError(f"no such statistic in this validation result: "
                           f"{', '.join(unknown) or '(none chosen)'}; it has "
                           f"{', '.join(result['statistics'])}")
    effects = [e for e in result["effects"] if e.get("paired")]
    if not effects:
        raise UebenchError("the validation result has no paired effects to draw (no run with a "
                           "control and seeds): run the grid with its random-noise controls")
    axis = sweep_axis(effects)
    xs, ticks, tick_labels, log = _positions(effects, result["settings"], axis)
    span = (max(xs) - min(xs)) or 1.0
    several = len({e.get("grid") for e in effects}) > 1

    def line(e: Mapping[str, Any]) -> str:
        pair = f"{e['method']} − {e['control']}"
        return f"{e.get('grid')}: {pair}" if several else pair

    pairs = list(dict.fromkeys(line(e) for e in effects))
    fig = Figure(figsize=(4.2 * len(names), 3.6))
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names, strict=True):
        info = STATISTICS.get(name)
        for i, pair in enumerate(pairs):
            chosen = [(x, e) for x, e in zip(xs, effects, strict=True)
                      if line(e) == pair and (e["paired"].get(name) or {}).get("mean") is not None]
            if not chosen:
                continue
            # a small sideways shift per pair keeps overlapping intervals readable
            shift = (i - (len(pairs) - 1) / 2) * 0.06
            px = [x * (1 + shift) if log else x + shift * span / 2 for x, _ in chosen]
            p = [e["paired"][name] for _, e in chosen]
            mean = [info.scale * q["mean"] for q in p]
            low = [m - info.scale * q["ci_low"] if q.get("ci_low") is not None else 0.0
                   for m, q in zip(mean, p, strict=True)]
            high = [info.scale * q["ci_high"] - m if q.get("ci_high") is not None else 0.0
                    for m, q in zip(mean, p, strict=True)]
            control_b = chosen[0][1]["role"] == "control-b"
            drawn = ax.errorbar(px, mean, yerr=[low, high], marker="o", capsize=3, label=pair,
                                color="tab:gray" if control_b else None,
                                # settings without an axis are not a sequence: no joining line
                                linestyle="none" if axis is None else "--" if control_b else "-")
            # hollow: not separated from the control (the interval covers 0 or points the
            # other way); filled: separated
            open_points = [(x, m) for x, m, q in zip(px, mean, p, strict=True)
                           if not q.get("separated")]
            if open_points:
                ax.scatter(*zip(*open_points, strict=True), s=22, facecolors="white",
                           edgecolors=drawn.lines[0].get_color(), zorder=3)
        ax.axhline(0.0, color="black", linewidth=0.8)
        if log:
            ax.set_xscale("log")
        ax.set_xticks(ticks)
        ax.set_xticklabels(tick_labels, fontsize=8, rotation=0 if axis else 25,
                           ha="center" if axis else "right")
        ax.minorticks_off()
        ax.set_xlabel(axis or "setting")
        ax.set_title(f"{info.label}: run − control\n({info.less} = less learnable)", fontsize=9)
    legend: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    fig.legend(list(legend.values()), list(legend), fontsize=8, loc="center left",
               bbox_to_anchor=(0.91, 0.5), frameon=False)
    return fig
