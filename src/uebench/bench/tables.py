"""Table layouts: the paper's Tables 1-3 and a long table, pivoted from per-cell statistics.

A layout names the axis that runs down the rows, the axis whose values become column groups, and
the metrics shown in each group (Ye et al., ICLR 2025, arXiv 2509.08058, §5.2):

- ``table1``: methods × datasets, test accuracy / #LP / UD (smallest UD per dataset in bold);
- ``table2``: methods × defenses, #LP / UD with the change relative to the undefended UD;
- ``table3``: models × methods, #LP / UD;
- ``long``: one row per cell with every axis label (always written as well).

Cells of the grid that differ in any other label (e.g. the model in a Table-1 grid) go into
separate tables, titled with those labels. A missing combination shows as an empty entry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from uebench.registry import Registry

METRIC_TITLES = {"test_acc": "test acc (%)", "lp": "#LP", "ud": "UD",
                 "drop": "acc drop (points)", "verdict": "verdict"}


@dataclasses.dataclass(frozen=True)
class Entry:
    """One table entry: a summary over seeds (``summarize`` dict) and how to show it."""

    metric: str  # test_acc | lp | ud
    summary: Mapping[str, Any] | None
    change: Mapping[str, Any] | None = None  # UD change vs. undefended (table2)
    bold: bool = False
    text: str | None = None  # a word instead of a number (a verdict)


@dataclasses.dataclass
class Table:
    title: str
    row_title: str
    groups: list[str]  # column-group labels ("" for none)
    metrics: list[str]  # metrics under each group
    rows: list[tuple[str, list[Entry]]]  # row label, len(groups) * len(metrics) entries


@dataclasses.dataclass(frozen=True)
class Layout:
    rows: str
    groups: str | None
    metrics: tuple[str, ...]
    change: bool = False  # show the UD change vs. the undefended cell
    bold_min_ud_by: str = "group"  # "group": per column group; "row": per row


LAYOUTS: Registry[Layout] = Registry("table layout")
LAYOUTS.register("table1", description="methods x datasets: test acc, #LP, UD")(
    Layout("method", "dataset", ("test_acc", "lp", "ud")))
# a defense's UD means little without what it did to the accuracy (docs/findings.md §8): the
# table2 report adds the same pivot of test accuracy (``companions``)
LAYOUTS.register("table2-acc", description="methods x defenses: test acc (%)")(
    Layout("method", "defense", ("test_acc",)))
LAYOUTS.register("table2", description="methods x defenses: #LP, UD (change)",
                 companions=("table2-acc",))(
    Layout("method", "defense", ("lp", "ud"), change=True))
LAYOUTS.register("table3", description="models x methods: #LP, UD")(
    Layout("model", "method", ("lp", "ud"), bold_min_ud_by="row"))
LAYOUTS.register("long", description="one row per cell")(
    Layout("cell", None, ("test_acc", "lp", "ud"), change=True))


def _ordered(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _mean(entry: Entry) -> float | None:
    return None if entry.summary is None else entry.summary.get("mean")


def _bold_min(entries: list[Entry]) -> None:
    """Mark the smallest mean UD (the paper bolds the best unlearnability)."""
    uds = [(m, i) for i, e in enumerate(entries)
           if e.metric == "ud" and (m := _mean(e)) is not None]
    if len(uds) > 1:
        _, best = min(uds)
        entries[best] = dataclasses.replace(entries[best], bold=True)


def _entries(cell: Mapping[str, Any] | None, layout: Layout) -> list[Entry]:
    out = []
    for metric in layout.metrics:
        summary = cell.get(metric) if cell else None
        if summary is not None and summary.get("mean") is None:
            summary = None
        change = cell.get("ud_change") if (cell and metric == "ud" and layout.change) else None
        if change is not None and change.get("mean") is None:
            change = None
        out.append(Entry(metric, summary, change))
    return out


def _pivot(cells: Sequence[Mapping[str, Any]], layout: Layout, title: str) -> Table:
    assert layout.groups is not None
    rows = _ordered([c["labels"][layout.rows] for c in cells])
    groups = _ordered([c["labels"][layout.groups] for c in cells])
    at = {(c["labels"][layout.rows], c["labels"][layout.groups]): c for c in cells}
    grid = [[_entries(at.get((r, g)), layout) for g in groups] for r in rows]
    if layout.bold_min_ud_by == "row":
        for line in grid:
            flat = [e for group in line for e in group]
            _bold_min(flat)
            line[:] = [flat[i:i + len(layout.metrics)] for i in range(0, len(flat),
                                                                       len(layout.metrics))]
    else:
        for g in range(len(groups)):
            column = [grid[r][g] for r in range(len(rows))]
            flat = [e for entry in column for e in entry]
            _bold_min(flat)
            for r in range(len(rows)):
                k = len(layout.metrics)
                grid[r][g] = flat[r * k:(r + 1) * k]
    return Table(title=title, row_title=layout.rows, groups=groups, metrics=list(layout.metrics),
                 rows=[(r, [e for group in line for e in group]) for r, line in zip(rows, grid)])


def _other_labels(cell: Mapping[str, Any], layout: Layout) -> tuple[tuple[str, str], ...]:
    return tuple((k, v) for k, v in cell["labels"].items() if k not in (layout.rows, layout.groups))


def build_tables(cells: Sequence[Mapping[str, Any]], layout_name: str) -> list[Table]:
    """The tables of one layout: one per combination of the labels the layout does not pivot."""
    layout = LAYOUTS.get(layout_name)
    if layout.groups is None:
        return [long_table(cells)]
    parts: dict[tuple[tuple[str, str], ...], list[Mapping[str, Any]]] = {}
    for cell in cells:
        parts.setdefault(_other_labels(cell, layout), []).append(cell)
    return [_pivot(part, layout, " · ".join(f"{k} {v}" for k, v in other))
            for other, part in parts.items()]


def long_table(cells: Sequence[Mapping[str, Any]]) -> Table:
    """Every cell on its own row, labelled with every axis."""
    layout = LAYOUTS.get("long")
    axes = _ordered([k for c in cells for k in c["labels"]])
    rows = [(", ".join(f"{k}={c['labels'].get(k, '')}" for k in axes), _entries(c, layout))
            for c in cells]
    return Table(title="", row_title="cell", groups=[""], metrics=list(layout.metrics),
                 rows=rows)
