"""Write the result of ``uebench ud`` to disk: ``results.json``, a Markdown table with the
statistics (``results.md``) and one CSV row per run (``results.csv``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from uebench.learnability.run_info import describe_engine
from uebench.learnability.stat_report import markdown_paired, markdown_statistics, one_seed_rows
from uebench.utils.io import atomic_write_text, write_json

__all__ = ["write_results"]


def _pct(value: Any) -> str:
    return "–" if value is None else f"{100.0 * float(value):.2f}"


def _markdown(result: Mapping[str, Any]) -> str:
    clean = result["runs"][0]
    lines = [
        "# Unlearnable Distance",
        "",
        f"- dataset: {result['dataset']} · model: {result['model']}",
        f"- SAL engine: {result['engine']} (origin: {result['origin']}): {result['ud_label']}",
    ]
    if result["beta_source"] == "clean":
        lines.append(
            f"- β = {result['beta']:.6g}: mean over the {clean['epochs']} epochs of the "
            f"clean run ({clean['name']}) of the per-epoch 2-means midpoints (Eq. 4)"
        )
    else:
        lines.append(f"- β = {result['beta']:.6g} (given, not computed from the clean run)")
    if result.get("decimals") is not None:
        lines.append(
            f"- SAL values rounded to {result['decimals']} decimals first, like the official logs"
        )
    lines.append(
        f"- #LP = mean over epochs of the number of layers (of {len(result['layers'])}) "
        "with SAL > β; UD = #LP / #LP of the clean run (Eq. 5)"
    )
    lines += ["", "| run | test acc (%) | #LP | UD |", "|---|---:|---:|---:|"]
    for run in result["runs"]:
        ud = "–" if run["ud"] is None else f"{run['ud']:.3f}"
        name = run["name"] + (" (clean)" if run["role"] == "clean" else "")
        lines.append(f"| {name} | {_pct(run['test_acc'])} | {run['lp']:.2f} | {ud} |")
    lines += _statistics_lines(result["runs"])
    for title, items in (
        ("Warnings", result.get("warnings") or []),
        ("Notes", result.get("notes") or []),
    ):
        if items:
            lines += ["", f"{title}:", ""] + [f"- {item}" for item in items]
    return "\n".join(lines) + "\n"


def _statistics_lines(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    """One seed's statistics, and each run's difference from its control (no interval: that
    needs seeds, ``uebench evaluate --seeds 0,1,2``)."""
    rows = one_seed_rows(entries)
    lines = markdown_statistics(rows)
    if not lines:
        return []
    out = ["", "Statistics (docs/ud.md):", "", *lines]
    paired = markdown_paired(rows)
    if paired:
        out += ["", "Against the control (run − control; one seed gives no interval: use "
                    "several seeds before reading a difference):", "", *paired]
    return out


def _csv(result: Mapping[str, Any]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(
        [
            "run",
            "role",
            "test_acc",
            "epochs",
            "lp",
            "ud",
            "beta",
            "engine",
            "origin",
            "learnable_per_epoch",
        ]
    )
    for run in result["runs"]:
        writer.writerow(
            [
                run["name"],
                run["role"],
                "" if run["test_acc"] is None else repr(run["test_acc"]),
                run["epochs"],
                repr(run["lp"]),
                "" if run["ud"] is None else repr(run["ud"]),
                repr(result["beta"]),
                result["engine"],
                result["origin"],
                " ".join(str(c) for c in run["learnable_per_epoch"]),
            ]
        )
    return buf.getvalue()


def write_results(
    out_dir: Path | str,
    table: Mapping[str, Any],
    *,
    engine: str,
    origin: str,
    dataset: str,
    model: str,
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """Write ``results.json``, ``results.md`` and ``results.csv`` (each atomically).

    Args:
        out_dir: created if needed.
        table: the output of :func:`uebench.learnability.distance.ud_table`.
        engine, origin: the SAL engine and origin the runs used (label the UD kind).
        dataset, model: for the header.
        notes: free-text lines appended to the Markdown and stored in the JSON.

    Returns:
        The stored result (``table`` plus the metadata and ``ud_label``).
    """
    out_dir = Path(out_dir)
    result = {
        "dataset": dataset,
        "model": model,
        "engine": engine,
        "origin": origin,
        "ud_label": describe_engine(engine, origin),
        **dict(table),
        "notes": list(notes),
    }
    write_json(out_dir / "results.json", result)
    atomic_write_text(out_dir / "results.md", _markdown(result))
    atomic_write_text(out_dir / "results.csv", _csv(result))
    return result
