"""Across seeds: one table of mean ± std and a 95 % interval per run, from per-seed results.

Each seed's evaluation is complete on its own (its β, #LP, UD, in ``OUT/seed<k>/``); UD is a ratio
*within* a seed (same initial weights, same data order for the clean and the poisoned run), so the
seeds' UDs are aggregated, not their #LPs. The interval is Student's t over seeds
(:mod:`uebench.learnability.stats`). Everything here is regenerated from stored results.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from uebench.learnability.stat_report import (
    PAIRED_NOTE,
    add_statistics,
    markdown_paired,
    markdown_statistics,
)
from uebench.learnability.stats import format_summary, summarize
from uebench.utils.io import atomic_write_text, write_json

FIELDS = ("test_acc", "lp", "ud")


def aggregate_seeds(per_seed: Sequence[Mapping[str, Any]], seeds: Sequence[int],
                    out: Path | None = None) -> dict[str, Any]:
    """Combine per-seed result tables (``recompute`` outputs) run by run name: UD, #LP and
    accuracy as before, plus every statistic over seeds and paired against the run's control
    (:mod:`uebench.learnability.stat_report`)."""
    names: list[str] = []
    for table in per_seed:
        for run in table["runs"]:
            if run["name"] not in names:
                names.append(run["name"])
    rows = []
    for name in names:
        entries = [next((r for r in t["runs"] if r["name"] == name), None) for t in per_seed]
        row: dict[str, Any] = {"name": name, "role": next(e["role"] for e in entries if e)}
        for field in FIELDS:
            row[field] = summarize([e.get(field) if e else None for e in entries])
            row[f"{field}_per_seed"] = [e.get(field) if e else None for e in entries]
        row["control"] = next((e.get("control") for e in entries if e), None)
        stats = list(dict.fromkeys(k for e in entries if e for k in e.get("statistics") or {}))
        row["statistics_per_seed"] = {
            k: [(e.get("statistics") or {}).get(k) if e else None for e in entries] for k in stats}
        rows.append(row)
    add_statistics(rows)
    first = per_seed[0]
    result = {
        "seeds": list(seeds),
        "dataset": first.get("dataset"), "model": first.get("model"),
        "engine": first.get("engine"), "origin": first.get("origin"),
        "ud_label": first.get("ud_label"),
        "beta_per_seed": [t["beta"] for t in per_seed],
        "beta": summarize([t["beta"] for t in per_seed]),
        "runs": rows,
        "notes": [n for n in first.get("notes", []) if not n.startswith("seed ")],
        "warnings": [w for t in per_seed for w in t.get("warnings", [])],
        "files": first.get("files", {}),
    }
    if out is not None:
        write_results(Path(out), result)
    return result


def markdown(result: Mapping[str, Any]) -> str:
    seeds = ", ".join(map(str, result["seeds"]))
    lines = [
        f"# UD over seeds {seeds}: {result.get('dataset')} / {result.get('model')}",
        "",
        f"SAL engine: {result.get('ud_label')}. Mean ± std [95 % t-interval] over "
        f"{len(result['seeds'])} seeds (init and data order; same images and poisons). "
        f"β per seed: {', '.join(f'{b:.4f}' for b in result['beta_per_seed'])}.",
        "",
        "| run | test acc (%) | #LP | UD |",
        "|---|---:|---:|---:|",
    ]
    for r in result["runs"]:
        ud = format_summary(r["ud"]) if r["role"] != "clean" else "–"
        lines.append(f"| {r['name']} ({r['role']}) | {format_summary(r['test_acc'], 2, 100)} | "
                     f"{format_summary(r['lp'], 2)} | {ud} |")
    stats = markdown_statistics(result["runs"])
    if stats:
        lines += ["", "## Statistics (mean ± std [95 % t-interval] over seeds; docs/ud.md)", "",
                  *stats]
    paired = markdown_paired(result["runs"])
    if paired:
        lines += ["", "## Against the control", "", PAIRED_NOTE, "", *paired]
    lines += [""] + [f"- {n}" for n in result.get("notes", [])]
    lines += [f"- warning: {w}" for w in result.get("warnings", [])]
    return "\n".join(lines).rstrip() + "\n"


def _csv(result: Mapping[str, Any]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["name", "role", "field", "n", "mean", "std", "ci_low", "ci_high",
                     "per_seed"])
    for r in result["runs"]:
        for field in FIELDS:
            s = r[field]
            writer.writerow([r["name"], r["role"], field, s["n"], s["mean"], s["std"],
                             s["ci_low"], s["ci_high"],
                             " ".join("" if v is None else f"{v:.6g}"
                                      for v in r[f"{field}_per_seed"])])
    return buf.getvalue()


def write_results(out: Path, result: Mapping[str, Any]) -> None:
    write_json(out / "results.json", result)
    atomic_write_text(out / "results.md", markdown(result))
    atomic_write_text(out / "results.csv", _csv(result))
