"""Recompute β, #LP and UD from stored training runs and write ``results.{json,md,csv}`` + figures.

A run directory (README.md, "Run directories are the truth") holds ``metrics.jsonl`` (one row per
epoch, with the SAL values), ``config.yaml`` and ``summary.json``; ``summary.json`` is written
last, so a run without it is unfinished and is refused (resume it first). Nothing here retrains:
UD is a function of stored rows. Runs are read with :func:`uebench.train.rundir.load_run`
(re-exported here with :class:`RunRecord` and the run errors).

``recompute`` is the implementation of ``uebench ud``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from uebench.learnability.distance import checked_beta, ud_table
from uebench.learnability.engines import SAL_ENGINES
from uebench.learnability.paired import match_controls, poison_identity, role_of
from uebench.learnability.stat_report import markdown_paired, markdown_statistics, one_seed_rows
from uebench.learnability.statistics import compute_statistics
from uebench.learnability.threshold import SalDataError
from uebench.train.rundir import IncompleteRunError, RunError, RunRecord, load_run
from uebench.utils.io import atomic_write_text, write_json

__all__ = [
    "IncompleteRunError",
    "RunError",
    "RunRecord",
    "describe_engine",
    "load_run",
    "recompute",
    "run_metadata",
    "write_results",
]


def _same_measured_epochs(runs: Sequence[RunRecord], tag: str) -> None:
    """A post-hoc tag measured on different epochs in different runs (one still being measured,
    or an interrupted `uebench sal`) would compare #LP over different epochs: refuse it."""
    measured = [sorted(int(r["epoch"]) for r in run.rows if r.get("sal")) for run in runs]
    for run, epochs in zip(runs[1:], measured[1:]):
        if epochs != measured[0]:
            raise RunError(
                f"SAL tag {tag!r} covers epochs {measured[0]} in {runs[0].path} but {epochs} in "
                f"{run.path}: finish or re-run `uebench sal` with the same --every/--epochs on "
                "every run (a measurement may still be running)")


def _annotate(table: dict[str, Any], runs: Sequence[RunRecord]) -> None:
    """Each table entry gains its role (``control`` for random noise), the control it is read
    against (``control``: its name, ``control_index``: its position in ``runs``) and every
    registered statistic (:mod:`uebench.learnability.statistics`)."""
    entries = table["runs"]
    idents = {str(i): (poison_identity(r.config) if i else None) for i, r in enumerate(runs)}
    controls = match_controls(idents)
    for i, entry in enumerate(entries):
        ident = idents[str(i)]
        if i and ident is not None and ident["control"]:
            entry["role"] = role_of(ident)
        j = controls.get(str(i)) if i else None
        entry["control_index"] = None if j is None else int(j)
        entry["control"] = None if j is None else entries[int(j)]["name"]
    try:
        values = compute_statistics(runs[0], runs[1:])
    except SalDataError as exc:  # e.g. epochs without SAL under skip_missing
        table["warnings"] = [*table["warnings"], f"statistics not computed: {exc}"]
        values = [{} for _ in entries]
    for entry, stats in zip(entries, values):
        entry["statistics"] = stats


# --------------------------------------------------------------------------- metadata


def _one(values: list[Any], what: str, warnings_out: list[str]) -> str:
    distinct = sorted({str(v) for v in values if v is not None})
    if not distinct:
        return "unknown"
    if len(distinct) > 1:
        warnings_out.append(f"runs differ in {what}: {distinct}")
        return "mixed (" + ", ".join(distinct) + ")"
    return distinct[0]


def _nested(mapping: Mapping[str, Any], *keys: str) -> Any:
    value: Any = mapping
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def run_metadata(runs: Sequence[RunRecord]) -> dict[str, Any]:
    """SAL engine and origin (from the rows' ``sal_engine``/``sal_origin``, else the summary or
    ``config["sal"]``), dataset (``config["data"]["name"]``) and model (``config["model"]["name"]``)
    shared by ``runs``; differing values give ``"mixed (...)"`` and a message in ``warnings``."""
    out_warnings: list[str] = []
    engines: list[Any] = []
    origins: list[Any] = []
    for run in runs:
        row_engines = [r.get("sal_engine") for r in run.rows if r.get("sal_engine") is not None]
        # rows carry the origin's kind in sal_origin_kind (sal_origin is its value, a float)
        row_origins = [
            r.get("sal_origin_kind") for r in run.rows if r.get("sal_origin_kind") is not None
        ]
        engines += row_engines or [
            run.summary.get("sal_engine") or _nested(run.config, "sal", "engine")
        ]
        origins += row_origins or [
            run.summary.get("sal_origin") or _nested(run.config, "sal", "origin")
        ]
    meta = {
        "engine": _one(engines, "SAL engine", out_warnings),
        "origin": _one(origins, "SAL origin", out_warnings),
        "dataset": _one([_nested(r.config, "data", "name") for r in runs], "dataset", out_warnings),
        "model": _one([_nested(r.config, "model", "name") for r in runs], "model", out_warnings),
    }
    if meta["model"].startswith("mixed"):
        out_warnings.append("UD compares runs of the same architecture; the models differ")
    meta["warnings"] = out_warnings
    return meta


def describe_engine(engine: str, origin: str) -> str:
    """What kind of UD a SAL engine gives (docs/sal.md, "How to choose"), from the engine's registry
    metadata (``paper_parity``, ``label``); names no longer registered (old logs) are described
    as such."""
    if engine not in SAL_ENGINES:
        parity = engine == "official"  # the paper code's own logs
        label = engine
    else:
        meta = SAL_ENGINES.meta(engine)
        parity, label = bool(meta.get("paper_parity")), str(meta.get("label", engine))
    if not parity:
        return (f"definition-faithful UD ({label}): follows the paper's definition, not its "
                "protocol, so these are not the paper's numbers; do not compare them with the "
                "paper's Tables 1-3")
    if origin in ("official", "train_running", "unknown"):
        return f"paper-parity UD ({label}: the official code's SAL semantics)"
    return (f"{label} with origin={origin!r}: official optimiser semantics but not the official "
            "origin (the epoch's running train loss), so not exactly the paper's protocol")


# --------------------------------------------------------------------------- writing


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


# --------------------------------------------------------------------------- uebench ud


def recompute(
    clean_dir: Path | str,
    poisoned_dirs: Sequence[Path | str],
    out_dir: Path | str | None = None,
    beta: float | None = None,
    decimals: int | None = None,
    *,
    skip_missing: bool = False,
    notes: Sequence[str] = (),
    sal_tag: str | None = None,
) -> dict[str, Any]:
    """β, #LP and UD of stored runs; with ``out_dir``, also the result files and two figures.

    Args:
        clean_dir: the clean run (β and the UD denominator; for defended runs, the undefended
            clean run, as the paper's Table 2).
        poisoned_dirs: runs to compare, in table order.
        out_dir: if given, writes ``results.{json,md,csv}``, ``sal_heatmaps.png`` and
            ``learnable_counts.png`` there.
        beta: a fixed threshold instead of the clean run's.
        decimals: round SAL like the official logs (``4``) first.
        skip_missing: ignore epochs without SAL instead of refusing the run.
        notes: extra lines for the report.
        sal_tag: use the post-hoc SAL measurement with this tag (``uebench sal --tag``).

    Returns:
        The :func:`ud_table` dict plus ``dataset, model, engine, origin, ud_label, notes`` and,
        with ``out_dir``, ``files`` (name → path).
    """
    beta = checked_beta(beta)  # before reading anything
    runs = [load_run(d, sal_tag=sal_tag) for d in (clean_dir, *poisoned_dirs)]
    if sal_tag is not None:
        _same_measured_epochs(runs, sal_tag)
    table = ud_table(runs[0], runs[1:], beta=beta, decimals=decimals, skip_missing=skip_missing)
    _annotate(table, runs)
    meta = run_metadata(runs)
    table["warnings"] = list(table["warnings"]) + meta.pop("warnings")
    if out_dir is None:
        return {
            **meta,
            "ud_label": describe_engine(meta["engine"], meta["origin"]),
            **table,
            "notes": list(notes),
        }
    from uebench.learnability.plots import (  # lazy: matplotlib
        plot_learnable_counts,
        plot_sal_heatmaps,
    )

    out_dir = Path(out_dir)
    result = write_results(out_dir, table, notes=notes, **meta)
    files = {
        "results.json": out_dir / "results.json",
        "results.md": out_dir / "results.md",
        "results.csv": out_dir / "results.csv",
        "sal_heatmaps.png": plot_sal_heatmaps(
            runs, out_dir / "sal_heatmaps.png", decimals=decimals, skip_missing=skip_missing
        ),
        "learnable_counts.png": plot_learnable_counts(
            runs,
            table["beta"],
            out_dir / "learnable_counts.png",
            decimals=decimals,
            skip_missing=skip_missing,
        ),
    }
    return {**result, "files": {k: str(v) for k, v in files.items()}}
