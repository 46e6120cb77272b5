"""Per-task β, #LP and UD, and the similarity of tasks' SAL vectors, from stored multi-task runs.

For each task t measured in the clean run (rows' ``task_sal``, :mod:`.sal`): β_t is the clean run's
learnable threshold over t's layers (backbone + t's head; paper Eq. 4), #LP_t the mean number of
those layers with SAL > β_t per epoch, UD_t = #LP_t(poisoned) / #LP_t(clean) (Eq. 5) — the
single-task definitions (:mod:`uebench.learnability.distance`) applied to each task's rows.
The task similarity of an epoch is the cosine similarity between tasks' SAL vectors over the
layers every task has (the shared backbone; paper Fig. 4a). Nothing here retrains.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from uebench.errors import UebenchError
from uebench.learnability.distance import ud_table
from uebench.learnability.run_info import describe_engine
from uebench.multitask.sal import KEY, measured_tasks, shared_layers, task_rows
from uebench.train.run_record import RunRecord, load_run
from uebench.utils.io import atomic_write_text, write_json


def task_similarity(rows: Sequence[Mapping[str, Any]],
                    tasks: Sequence[str] | None = None) -> dict[str, Any]:
    """Per epoch, the task x task cosine similarity of SAL over the shared layers.

    Returns ``{"tasks", "layers", "epochs", "per_epoch": [T x T lists], "mean": T x T}``
    (``nan`` where a task's vector is all zero; the mean skips those epochs).
    """
    from uebench.learnability.task_similarity import sal_cosine_similarity  # lazy: matplotlib

    tasks = list(tasks or measured_tasks(rows))
    layers = shared_layers(rows, tasks)
    if not tasks or not layers:
        raise UebenchError("no per-task SAL over shared layers in these rows: train with "
                           "sal.enabled=true and at least one shared (backbone) layer")
    epochs, mats = [], []
    for row in rows:
        sal = row.get(KEY) or {}
        if not all(t in sal for t in tasks):
            continue
        _, sim = sal_cosine_similarity({t: [[sal[t][k] for k in layers]] for t in tasks})
        epochs.append(row.get("epoch"))
        mats.append(sim)
    stack = np.stack(mats)
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(stack, axis=0) if np.isfinite(stack).any() else stack[0]
    return {"tasks": tasks, "layers": layers, "epochs": epochs,
            "per_epoch": [m.tolist() for m in stack], "mean": mean.tolist()}


def _metrics(run: RunRecord) -> dict[str, float]:
    source = run.summary or (run.rows[-1] if run.rows else {})
    return {k: v for k, v in source.items() if k.startswith("test/") and not k.endswith("/loss")}


def task_ud(clean: RunRecord, poisoned: Sequence[RunRecord]) -> dict[str, Any]:
    """``{task: ud_table(...)}``: β, #LP and UD of every task measured in the clean run."""
    tables = {}
    for task in measured_tasks(clean.rows):
        tables[task] = ud_table((clean.name, task_rows(clean.rows, task)),
                                [(p.name, task_rows(p.rows, task)) for p in poisoned])
    if not tables:
        raise UebenchError(f"{clean.name} has no per-task SAL ({KEY} in metrics.jsonl): train "
                           "it with sal.enabled=true")
    return tables


def multitask_report(clean_dir: Path | str, poisoned_dirs: Sequence[Path | str], *,
                     out_dir: Path | str | None = None,
                     notes: Sequence[str] = ()) -> dict[str, Any]:
    """Per-task β / #LP / UD and task similarities of stored runs; with ``out_dir`` also
    ``results.{json,md}`` there (figures: :func:`uebench.multitask.plots.plot_multitask`)."""
    clean = load_run(clean_dir, name="clean")
    poisoned = [load_run(p) for p in poisoned_dirs]
    tables = task_ud(clean, poisoned)
    runs = []
    for k, run in enumerate([clean, *poisoned]):
        runs.append({
            "name": run.name, "role": "clean" if k == 0 else "poisoned", "path": str(run.path),
            "metrics": _metrics(run),
            "per_task": {t: {key: table["runs"][k][key] for key in
                             ("lp", "ud", "proportion_per_epoch", "learnable_per_epoch")}
                         for t, table in tables.items()},
            "similarity": task_similarity(run.rows, list(tables)),
        })
    engine = next((r.get(f"{KEY}_engine") for r in clean.rows if r.get(f"{KEY}_engine")), "?")
    origin = next((r.get(f"{KEY}_origin_kind") for r in clean.rows
                   if r.get(f"{KEY}_origin_kind")), "unknown")
    result = {"kind": "multitask-evaluation", "tasks": list(tables),
              "beta": {t: table["beta"] for t, table in tables.items()},
              "layers": {t: table["layers"] for t, table in tables.items()},
              "engine": engine, "origin": origin,
              "ud_label": describe_engine(str(engine), str(origin)),
              "runs": runs, "notes": list(notes),
              "warnings": [w for table in tables.values() for w in table["warnings"]]}
    if out_dir is not None:
        write_json(Path(out_dir) / "results.json", result)
        atomic_write_text(Path(out_dir) / "results.md", markdown(result))
    return result


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


def markdown(result: Mapping[str, Any]) -> str:
    """The per-task UD table, the test metrics and the mean task similarity of every run."""
    tasks = result["tasks"]
    lines = ["# Multi-task UD per task", "",
             f"SAL engine: {result.get('ud_label')}. β per task (clean run): "
             + ", ".join(f"{t} {_fmt(result['beta'][t], 4)}" for t in tasks) + ".", "",
             "| run | " + " | ".join(f"#LP {t} | UD {t}" for t in tasks) + " |",
             "|---|" + "---:|---:|" * len(tasks)]
    for run in result["runs"]:
        cells = [f"{_fmt(run['per_task'][t]['lp'], 2)} | {_fmt(run['per_task'][t]['ud'])}"
                 for t in tasks]
        lines.append(f"| {run['name']} ({run['role']}) | " + " | ".join(cells) + " |")
    metrics = sorted({k for run in result["runs"] for k in run["metrics"]})
    lines += ["", "| run | " + " | ".join(m.removeprefix("test/") for m in metrics) + " |",
              "|---|" + "---:|" * len(metrics)]
    for run in result["runs"]:
        lines.append(f"| {run['name']} | "
                     + " | ".join(_fmt(run["metrics"].get(m)) for m in metrics) + " |")
    lines += ["", "Mean over epochs of the cosine similarity of tasks' SAL over the shared layers:"]
    for run in result["runs"]:
        sim = run["similarity"]
        pairs = [f"{a}~{b} {_fmt(sim['mean'][i][j], 2)}" for i, a in enumerate(sim["tasks"])
                 for j, b in enumerate(sim["tasks"]) if j > i]
        lines.append(f"- {run['name']}: " + ", ".join(pairs))
    lines += [f"- {n}" for n in result.get("notes", [])]
    lines += [f"- warning: {w}" for w in result.get("warnings", [])]
    return "\n".join(lines).rstrip() + "\n"
