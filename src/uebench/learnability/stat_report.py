"""Statistics over seeds and against the control, as stored in ``results.json`` and printed in
every table (``evaluate --seeds``, ``bench``, ``check``): one implementation for all three.

Input rows are per run: ``{"name", "role", "control", "statistics_per_seed": {stat: [v_seed,
...]}}`` with the seeds in the same order for every run (missing values ``None``). Each row gains
``statistics`` (mean, std, 95 % t-interval per statistic) and, where it has a control,
``paired`` (:func:`uebench.learnability.paired.paired_difference` per statistic).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

from uebench.learnability.paired import paired_difference, separation_text
from uebench.learnability.statistics import STATISTICS, statistic_names
from uebench.learnability.stats import format_summary, summarize
from uebench.utils.stored import markdown_lines


def add_statistics(rows: Sequence[MutableMapping[str, Any]]) -> None:
    """Fill ``statistics`` and ``paired`` of every row (in place)."""
    by_name = {r["name"]: r for r in rows}
    for row in rows:
        per_seed = row.get("statistics_per_seed") or {}
        row["statistics"] = {k: summarize(v, method="t") for k, v in per_seed.items()}
        control = by_name.get(row.get("control") or "")
        if control is None:
            row["paired"] = {}
            continue
        other = control.get("statistics_per_seed") or {}
        row["paired"] = {
            k: paired_difference(v, other.get(k, [None] * len(v)),
                                 less=STATISTICS.get(k).less if k in STATISTICS else "lower")
            for k, v in per_seed.items()}


def one_seed_rows(entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows of :func:`add_statistics` (filled) from one seed's table entries (``recompute``):
    every statistic a one-value series, so a difference from the control but no interval."""
    rows = [{"name": e["name"], "role": e["role"], "control": e.get("control"),
             "statistics_per_seed": {k: [v] for k, v in (e.get("statistics") or {}).items()}}
            for e in entries]
    add_statistics(rows)
    return rows


def add_statistics_by_seed(rows: Sequence[MutableMapping[str, Any]]) -> None:
    """:func:`add_statistics` for rows keyed by seed (``statistics_by_seed``: {stat: {seed: v}},
    popped): the seeds of all rows are aligned by number (a seed a run lacks is ``None``), and
    ``statistics_seeds`` lists them."""
    seeds = sorted({s for r in rows for v in (r.get("statistics_by_seed") or {}).values()
                    for s in v})
    for r in rows:
        by_seed = r.pop("statistics_by_seed", None) or {}
        r["statistics_per_seed"] = {k: [v.get(s) for s in seeds] for k, v in by_seed.items()}
        r["statistics_seeds"] = seeds
    add_statistics(rows)


def shown_statistics(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Registered statistics with at least one value in ``rows`` (registry order)."""
    have = {k for r in rows for k, s in (r.get("statistics") or {}).items()
            if s.get("mean") is not None}
    return [n for n in statistic_names() if n in have]


def _fmt(name: str) -> tuple[str, int, float]:
    if name not in STATISTICS:
        return name, 3, 1.0
    info = STATISTICS.get(name)
    return info.label, info.digits, info.scale


Grid = tuple[list[str], list[list[str]]]  # header, body rows


def grid_lines(grid: Grid) -> list[str]:
    """A (header, rows) table as Markdown lines (none for an empty table)."""
    header, body = grid
    return markdown_lines(header, body) if body else []


def statistics_grid(rows: Sequence[Mapping[str, Any]]) -> Grid:
    """Header and rows of the statistics table (mean ± std [95 % t-interval] over seeds)."""
    names = shown_statistics(rows)
    if not names:
        return [], []
    body = []
    for r in rows:
        cells = [f"{r['name']} ({r['role']})"]
        for n in names:
            _, digits, scale = _fmt(n)
            cells.append(format_summary(r["statistics"].get(n, {"mean": None}), digits, scale))
        body.append(cells)
    return ["run", *(_fmt(n)[0] for n in names)], body


def markdown_statistics(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The statistics of every run (mean ± std [95 % t-interval] over seeds)."""
    return grid_lines(statistics_grid(rows))


def interval_text(p: Mapping[str, Any], digits: int, scale: float = 1.0) -> str:
    """``-0.412 [-0.62, -0.20]``: a mean difference and its interval (``–`` without values)."""
    if p.get("mean") is None:
        return "–"
    text = f"{float(p['mean']) * scale:+.{digits}f}"
    if p.get("ci_low") is not None:
        text += (f" [{float(p['ci_low']) * scale:+.{digits}f}, "
                 f"{float(p['ci_high']) * scale:+.{digits}f}]")
    return text


def paired_cell(p: Mapping[str, Any], digits: int, scale: float) -> str:
    """``-0.412 [-0.62, -0.20] yes``: mean difference, its interval and the separation."""
    if p.get("mean") is None:
        return "–"
    return f"{interval_text(p, digits, scale)} {separation_text(p)}"


def paired_grid(rows: Sequence[Mapping[str, Any]]) -> Grid:
    """Header and rows of the against-the-control table: per run with a control, the paired
    difference run − control per statistic, its 95 % t-interval over seeds and whether it is
    separated on the less-learnable side."""
    paired = [r for r in rows if r.get("paired")]
    names = shown_statistics(rows)
    if not paired or not names:
        return [], []
    body = [[f"{r['name']} − {r['control']}",
             *(paired_cell(r["paired"].get(n, {"mean": None}), *_fmt(n)[1:]) for n in names)]
            for r in paired]
    return ["run − control", *(_fmt(n)[0] for n in names)], body


def markdown_paired(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The against-the-control table (:func:`paired_grid`) as Markdown lines."""
    return grid_lines(paired_grid(rows))


PAIRED_NOTE = ("Against the control: the mean over seeds of (run − its random-noise control at "
               "the same budget), paired by seed, with its 95 % t-interval; 'yes' = the interval "
               "lies entirely on the less-learnable side of 0 (below 0 for every statistic here), "
               "'no' = it does not, 'n/a (1 seed)' = no interval with one seed. A second draw of "
               "the control (control-b) read against the first is the false-positive check.")
