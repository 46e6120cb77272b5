"""The post-hoc SAL measurements of a run directory (``RUN/sal/<tag>.jsonl`` and ``<tag>.yaml``,
written by :mod:`uebench.learnability.posthoc`): where they are, reading them, and merging their
rows into the run's metrics rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from uebench.errors import UebenchError
from uebench.train.rundir import SAL_DIR, RunError, corrupt, json_rows


def tag_paths(run_dir: Path | str, tag: str) -> tuple[Path, Path]:
    """(rows, settings) files of one post-hoc SAL measurement."""
    if not tag or any(c in tag for c in "/\\") or tag.startswith("."):
        raise UebenchError(f"SAL tag {tag!r} must be a plain name such as 'compat' or 'eps0.1'")
    base = Path(run_dir) / SAL_DIR
    return base / f"{tag}.jsonl", base / f"{tag}.yaml"


def has_tag(run_dir: Path | str, tag: str) -> bool:
    return tag_paths(run_dir, tag)[0].is_file()


def read_tag(run_dir: Path | str, tag: str) -> list[dict[str, Any]]:
    """The stored rows ``{epoch, sal, sal_origin, ...}`` of a post-hoc measurement."""
    rows_path, _ = tag_paths(run_dir, tag)
    if not rows_path.is_file():
        raise RunError(
            f"{run_dir} has no SAL measurement tagged {tag!r} ({rows_path} is missing): run "
            f"`uebench sal {run_dir} --tag {tag} ...` first")
    return json_rows(rows_path)


def read_tag_settings(run_dir: Path | str, tag: str) -> dict[str, Any] | None:
    """The settings a tag was measured with (``RUN/sal/<tag>.yaml``), ``None`` before any."""
    rows_path, path = tag_paths(run_dir, tag)
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        raise corrupt(path, "not YAML", f"delete it (and {rows_path}) and re-run") from None
    return data if isinstance(data, dict) else {}


def merge_tag_rows(metrics_rows: Sequence[Mapping[str, Any]],
                   tag_rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Metrics rows of the measured epochs with their SAL fields replaced by the tag's."""
    by_epoch = {int(r["epoch"]): dict(r) for r in metrics_rows}
    out = []
    for t in tag_rows:
        epoch = int(t["epoch"])
        row = {k: v for k, v in by_epoch.get(epoch, {"epoch": epoch}).items()
               if not k.startswith("sal")}
        row.update(t)
        out.append(row)
    return out
