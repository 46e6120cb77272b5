"""Run directories: the file names, defined here once, and one reader per file.

A run directory is written by :mod:`uebench.train.run` (and ``fit``'s checkpoints) and read by
everything after training (SAL after training, UD and the statistics, landscapes, the bench)::

    RUN/config.yaml                        CONFIG      the resolved config (written first)
    RUN/env.json                           ENV         package versions, git commit, device
    RUN/identity.json                      IDENTITY    run id and the poison's content hash
    RUN/poisoned_indices.json              POISONED    which images are poisoned (poison_ratio <
                                                       1 or poison_mix add only)
    RUN/metrics.jsonl                      METRICS     one JSON row per epoch
    RUN/checkpoint.pt                      CHECKPOINT  model/optimizer/scheduler, last epoch
    RUN/snapshots/epoch-NNNN.safetensors   SNAPSHOTS   per-epoch weights (train.snapshots)
    RUN/trajectory/                        TRAJECTORY  the optimisation path (trajectory.enabled)
    RUN/sal/<tag>.jsonl, <tag>.yaml        SAL_DIR     SAL measured after training, per tag
    RUN/stats/<name>                       STATS       caches of the statistics (probes)
    RUN/summary.json                       SUMMARY     final numbers; written LAST

Every reader raises :class:`RunError` (a :class:`~uebench.errors.UebenchError`, so the command
line prints one message and exits with status 2): ``<dir> is not a training run directory: it has
no <file> ...`` for a missing file, ``<file> is corrupt (<why>); <fix>`` for one that cannot be
read, and :class:`IncompleteRunError` for a run without ``summary.json`` where a finished one is
needed. The SAL tag files are read by :mod:`uebench.train.sal_tags`, a whole run as one record
by :mod:`uebench.train.run_record`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from uebench.config import RunCfg, from_dict
from uebench.errors import UebenchError
from uebench.utils.io import CorruptFileError, read_json, read_jsonl

CONFIG = "config.yaml"
ENV = "env.json"
IDENTITY = "identity.json"
POISONED = "poisoned_indices.json"
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.pt"
SUMMARY = "summary.json"
SNAPSHOTS = "snapshots"
TRAJECTORY = "trajectory"
SAL_DIR = "sal"
STATS = "stats"

# any of these marks a directory as a (possibly interrupted) run
RUN_FILES = (CONFIG, CHECKPOINT, METRICS, SUMMARY)


class RunError(UebenchError, ValueError):
    """A run directory is missing, or one of its files is missing or cannot be read."""


class IncompleteRunError(RunError):
    """A run directory has no ``summary.json``: training has not finished."""


# ----------------------------------------------------------------------------- errors


def _missing(run_dir: Path | str, name: str) -> RunError:
    return RunError(f"{run_dir} is not a training run directory: it has no {name} (runs are "
                    "written by `uebench train --out DIR`)")


def corrupt(path: Path, why: str, fix: str = "delete it and re-run") -> RunError:
    """The error for a run file that cannot be read, naming why and the fix."""
    return RunError(f"{path} is corrupt ({why}); {fix}")


def _json_object(path: Path) -> dict[str, Any]:
    try:
        data = read_json(path)
    except CorruptFileError as exc:
        raise RunError(str(exc)) from None
    if not isinstance(data, dict):
        raise corrupt(path, "not a JSON object")
    return data


def json_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSON-lines file of a run (a corrupt one raises :class:`RunError`)."""
    try:
        return read_jsonl(path)
    except CorruptFileError as exc:
        raise RunError(str(exc)) from None


# ----------------------------------------------------------------------------- what is there


def is_run_dir(path: Path | str) -> bool:
    """Whether ``path`` holds a run: its config and its metrics or a checkpoint."""
    path = Path(path)
    return (path / CONFIG).is_file() and ((path / METRICS).is_file()
                                         or (path / CHECKPOINT).is_file())


def is_complete(run_dir: Path | str) -> bool:
    """Whether the run finished (``summary.json`` is written last)."""
    return (Path(run_dir) / SUMMARY).exists()


# ----------------------------------------------------------------------------- the files


def read_config_data(run_dir: Path | str, *, missing_ok: bool = False) -> dict[str, Any]:
    """``config.yaml`` as plain data (``{}`` for a run without one when ``missing_ok``)."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        if missing_ok:
            return {}
        raise _missing(run_dir, CONFIG)
    fix = "delete the run directory and re-run"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise corrupt(path, f"not valid YAML: {str(exc).splitlines()[0]}", fix) from None
    if not isinstance(data, dict):
        raise corrupt(path, "not a mapping", fix)
    return data


def read_config(run_dir: Path | str, cls: type[Any] = RunCfg) -> Any:
    """The resolved config a run was trained with, as ``cls`` (:class:`~uebench.config.RunCfg`;
    a multi-task run passes its own config class)."""
    return from_dict(cls, read_config_data(run_dir))


def read_metrics(run_dir: Path | str, *, missing_ok: bool = False) -> list[dict[str, Any]]:
    """The per-epoch rows of ``metrics.jsonl`` (``[]`` for a run without one when
    ``missing_ok``: one that has not finished an epoch)."""
    path = Path(run_dir) / METRICS
    if not path.is_file() and not missing_ok:
        raise _missing(run_dir, METRICS)
    return json_rows(path)


def read_summary(run_dir: Path | str) -> dict[str, Any]:
    """``summary.json`` of a finished run (:class:`IncompleteRunError` if it has none)."""
    path = Path(run_dir) / SUMMARY
    if not path.is_file():
        raise IncompleteRunError(
            f"run {run_dir} is incomplete: it has no {SUMMARY} (written when training "
            "finishes). Finish or resume it: re-run the same command (training resumes from "
            f"{CHECKPOINT})")
    return _json_object(path)


def read_identity(run_dir: Path | str) -> dict[str, Any] | None:
    """``identity.json`` (what makes the run this run), or ``None`` before it is written."""
    path = Path(run_dir) / IDENTITY
    return _json_object(path) if path.is_file() else None


def read_poisoned_indices(run_dir: Path | str) -> dict[str, Any] | None:
    """``poisoned_indices.json`` of a partially or mixed poisoned run: ``{poison_ratio,
    poison_mix, seed, n_clean, indices}``, the indices (sorted, unique, in [0, n_clean)) of the
    clean training images that took their poisoned version (with ``drop``: that were left out).
    ``None`` when the run has none (a clean run, or every image poisoned in place)."""
    path = Path(run_dir) / POISONED
    if not path.is_file():
        return None
    data = _json_object(path)
    fix = "delete the run directory and re-run to retrain"
    n, indices = data.get("n_clean"), data.get("indices")
    if not _is_int(n) or n < 0 or not isinstance(indices, list) \
            or not all(_is_int(i) for i in indices):
        raise corrupt(path, "expected n_clean and a list of integer indices", fix)
    outside = [i for i in indices if not 0 <= i < n]
    if outside:
        raise corrupt(path, f"indices {outside[:3]} lie outside the {n} training images", fix)
    if indices != sorted(set(indices)):
        raise corrupt(path, "the indices are not sorted and unique", fix)
    return data


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_env(run_dir: Path | str) -> dict[str, Any]:
    """``env.json``: the package versions, commit and device the run was trained with."""
    path = Path(run_dir) / ENV
    if not path.is_file():
        raise _missing(run_dir, ENV)
    return _json_object(path)


def stats_file(run_dir: Path | str, name: str) -> Path:
    """Where a statistic caches what it computed for this run (``RUN/stats/<name>``)."""
    return Path(run_dir) / STATS / name


# ----------------------------------------------------------------------------- snapshots


def snapshot_path(run_dir: Path | str, epoch: int) -> Path:
    return Path(run_dir) / SNAPSHOTS / f"epoch-{epoch:04d}.safetensors"


def snapshot_epochs(run_dir: Path | str) -> list[int]:
    """Epochs that have a stored snapshot, ascending."""
    folder = Path(run_dir) / SNAPSHOTS
    epochs = []
    for f in folder.glob("epoch-*.safetensors") if folder.is_dir() else []:
        try:
            epochs.append(int(f.stem.split("-", 1)[1]))
        except ValueError:
            continue
    return sorted(epochs)

