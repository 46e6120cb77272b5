"""From run directories to per-cell statistics over seeds (nothing is retrained).

A grid's ``index.json`` lists every cell (method, axis labels, seed) with the store keys of its run
and of its β run. For each (setting, seed) the runs are read by
:func:`uebench.learnability.report.recompute` (β from the clean run, #LP and UD per run); then each
(method, setting) is summarised over its seeds by :func:`uebench.learnability.stats.summarize`:
mean, sample std and a 95 % interval (percentile bootstrap or Student's t). UD is a ratio *within*
a seed (same initial weights and data order for clean and poisoned run), so per-seed UDs are
aggregated, never a ratio of averaged #LPs. ``ud_change`` is UD minus the same method's undefended
UD of the same seed (paper Table 2's subscripts), where the grid has that run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from uebench.bench.store import Store
from uebench.errors import UebenchError
from uebench.learnability.report import recompute
from uebench.learnability.stat_report import add_statistics_by_seed
from uebench.learnability.stats import summarize
from uebench.utils.io import read_json

FIELDS = ("test_acc", "lp", "ud", "ud_change")


def _setting_key(entry: Mapping[str, Any], **replace: str) -> tuple[tuple[str, str], ...]:
    setting = {**entry["setting"], **replace}
    return tuple(sorted(setting.items()))


def per_seed_values(index: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """One record per index entry with its test_acc, lp, ud (None where missing) and warnings."""
    store = Store(index["store"])
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for entry in index["entries"]:
        groups.setdefault((_setting_key(entry), entry["seed"]), []).append(entry)
    records, warnings = [], []
    for (_, seed), entries in groups.items():
        beta_key = entries[0]["beta"]
        others = list(dict.fromkeys(e["run"] for e in entries if e["run"] != beta_key))
        path = {k: store.path("train", k) for k in [beta_key, *others]}
        try:
            table = recompute(path[beta_key], [path[k] for k in others])
        except UebenchError as exc:  # unfinished, failed or unreadable: the cell loses this seed
            warnings.append(f"seed {seed}, {entries[0]['labels']}: {exc}")
            records += [{**e, "test_acc": None, "lp": None, "ud": None, "statistics": {},
                         "control_method": None, "role": None} for e in entries]
            continue
        keys = [beta_key, *others]
        by_key = dict(zip(keys, table["runs"]))
        method_of = {e["run"]: e["method"] for e in entries}
        for e in entries:
            run = by_key[e["run"]]
            j = run.get("control_index")
            records.append({**e, "test_acc": run["test_acc"], "lp": run["lp"], "ud": run["ud"],
                            "beta_value": table["beta"], "ud_label": table["ud_label"],
                            "role": run["role"] if not e["vanilla"] else "clean",
                            "control_method": None if j is None else method_of.get(keys[j]),
                            "statistics": run.get("statistics") or {}})
        warnings += [f"seed {seed}: {w}" for w in table.get("warnings", [])]
    _add_changes(records)
    return records, list(dict.fromkeys(warnings))


def _add_changes(records: list[dict[str, Any]]) -> None:
    """UD change relative to the same method, seed and setting without a defense."""
    undefended = {}
    for r in records:
        if r["labels"]["defense"] == "none":
            undefended[(r["method"], _setting_key(r), r["seed"])] = r["ud"]
    for r in records:
        r["ud_change"] = None
        if r["labels"]["defense"] == "none" or r["ud"] is None:
            continue
        key = (r["method"], _setting_key(r, **_defense_none(r)), r["seed"])
        base = undefended.get(key)
        if base is not None:
            r["ud_change"] = r["ud"] - base


def _defense_none(record: Mapping[str, Any]) -> dict[str, str]:
    return {"defense": "none"} if "defense" in record["setting"] else {}


def cell_stats(records: Sequence[Mapping[str, Any]], *, ci: str = "bootstrap"
               ) -> list[dict[str, Any]]:
    """Mean, std and interval over seeds of every (method, setting), in grid order."""
    cells: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for r in records:
        cells.setdefault((r["method"], _setting_key(r)), []).append(r)
    out = []
    for rows in cells.values():
        first = rows[0]
        stats: dict[str, Any] = {
            "method": first["method"], "labels": dict(first["labels"]),
            "setting": dict(first["setting"]), "vanilla": first["vanilla"],
            "seeds": [r["seed"] for r in rows],
            "runs": [r["run"] for r in rows],
            "beta": [r.get("beta_value") for r in rows],
        }
        for field in FIELDS:
            values = [r.get(field) for r in rows]
            stats[field] = summarize(values, method=ci)  # type: ignore[arg-type]
            stats[f"{field}_per_seed"] = values
        stats["role"] = next((r["role"] for r in rows if r.get("role")), None)
        stats["control"] = next((r["control_method"] for r in rows if r.get("control_method")),
                                None)
        names = list(dict.fromkeys(k for r in rows for k in r.get("statistics") or {}))
        stats["statistics_by_seed"] = {
            k: {r["seed"]: (r.get("statistics") or {}).get(k) for r in rows} for k in names}
        out.append(stats)
    _add_paired(out)
    return out


def _add_paired(cells: list[dict[str, Any]]) -> None:
    """Statistics over seeds and each cell's paired difference from its control cell (the
    control method in the same setting), seeds matched by number."""
    settings: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for c in cells:
        settings.setdefault(tuple(sorted(c["setting"].items())), []).append(c)
    for group in settings.values():
        rows = [{"name": c["method"], "role": c["role"] or "clean", "control": c["control"],
                 "statistics_by_seed": c.pop("statistics_by_seed")} for c in group]
        add_statistics_by_seed(rows)
        for c, row in zip(group, rows):
            for key in ("statistics_seeds", "statistics_per_seed", "statistics", "paired"):
                c[key] = row[key]


def collect(view: Path | str, index: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Per-cell statistics of a grid view (``OUT/<grid>/index.json`` + the runs it names)."""
    index = index or read_json(Path(view) / "index.json")
    records, warnings = per_seed_values(index)
    labels = sorted({r["ud_label"] for r in records if r.get("ud_label")})
    return {"grid": index["grid"], "layout": index["layout"], "ci": index["ci"],
            "beta_from": index["beta_from"], "axes": index["axes"], "ud_labels": labels,
            "cells": cell_stats(records, ci=index["ci"]), "warnings": warnings}
