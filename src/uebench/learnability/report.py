"""Recompute β, #LP and UD from stored training runs and write ``results.{json,md,csv}`` + figures.

A run directory (README.md, "Run directories are the truth") holds ``metrics.jsonl`` (one row per
epoch, with the SAL values), ``config.yaml`` and ``summary.json``; ``summary.json`` is written
last, so a run without it is unfinished and is refused (resume it first). Nothing here retrains:
UD is a function of stored rows. Runs are read with :func:`uebench.train.run_record.load_run`
(re-exported here with :class:`RunRecord` and the run errors).

``recompute`` is the implementation of ``uebench ud``; the runs' shared metadata comes from
:mod:`uebench.learnability.run_info` and the files are written by
:mod:`uebench.learnability.results`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from uebench.learnability.distance import checked_beta, ud_table
from uebench.learnability.paired import match_controls, poison_identity, role_of
from uebench.learnability.results import write_results
from uebench.learnability.run_info import describe_engine, run_metadata
from uebench.learnability.statistics import compute_statistics
from uebench.learnability.threshold import SalDataError
from uebench.train.run_record import RunRecord, load_run
from uebench.train.rundir import IncompleteRunError, RunError

__all__ = [
    "IncompleteRunError",
    "RunError",
    "RunRecord",
    "load_run",
    "recompute",
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
