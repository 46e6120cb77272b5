"""A whole run directory read as one record (its metrics rows, summary and config), which
everything after training works on: UD, the statistics, reports and landscapes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uebench.train.rundir import (
    CHECKPOINT,
    METRICS,
    SUMMARY,
    IncompleteRunError,
    RunError,
    is_complete,
    read_config_data,
    read_metrics,
    read_summary,
)
from uebench.train.sal_tags import merge_tag_rows, read_tag


@dataclass(frozen=True)
class RunRecord:
    """One stored training run: its metrics rows, summary and config (plain data)."""

    name: str
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def load_run(
    run_dir: Path | str, *, name: str | None = None, require_complete: bool = True,
    sal_tag: str | None = None,
) -> RunRecord:
    """Read ``metrics.jsonl``, ``summary.json`` and ``config.yaml`` of one run directory.

    Args:
        run_dir: the run directory.
        name: the run's display name; default ``summary["name"]``, else ``config["name"]``, else
            the directory name.
        require_complete: refuse a run without ``summary.json`` (the completion marker).
        sal_tag: take SAL from the post-hoc measurement ``RUN/sal/<tag>.jsonl``
            (:mod:`uebench.learnability.posthoc`) instead of the in-training one; the rows are
            then the measured epochs only.

    Raises:
        RunError: the directory or ``metrics.jsonl`` is missing or unreadable, or has no rows.
        IncompleteRunError: no ``summary.json`` and ``require_complete``.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"run directory {run_dir} does not exist")
    rows = read_metrics(run_dir)
    if not rows:
        raise RunError(f"{run_dir / METRICS} has no epoch rows")
    if is_complete(run_dir):
        summary = read_summary(run_dir)
    elif require_complete:
        raise IncompleteRunError(
            f"run {run_dir} is incomplete: it has no {SUMMARY} (written when training "
            f"finishes; {len(rows)} epoch row(s) so far). Finish or resume it (re-run the same "
            f"command: training resumes from {CHECKPOINT}) before computing UD")
    else:
        summary = {}
    config = read_config_data(run_dir, missing_ok=True)
    if sal_tag is not None:
        rows = merge_tag_rows(rows, read_tag(run_dir, sal_tag))
        if not rows:
            raise RunError(f"{run_dir}: SAL tag {sal_tag!r} has no measured epochs yet")
    label = name or _str(summary.get("name")) or _str(config.get("name")) or run_dir.name
    return RunRecord(name=label, rows=rows, summary=summary, config=config, path=run_dir)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
