"""Run a grid: plan -> jobs through an executor -> the grid's view and tables.

::

    OUT/<grid>/index.json      every cell -> store keys of its run and β run (written first)
    OUT/<grid>/progress.json   state of every job while the grid runs
    OUT/<grid>/runs/<cell>     links to the cells' run directories in the store
    OUT/<grid>/tables.*        reports (uebench.bench.report), from the run directories

Jobs already complete in the store are not dispatched. Interrupting the command and running it
again continues: finished jobs are reused, interrupted runs resume from their checkpoints.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from uebench.bench.cost import describe_plan, estimates
from uebench.bench.executors import Executor, get_executor
from uebench.bench.graph import Job, Plan, build_plan
from uebench.bench.grid import Grid
from uebench.bench.jobs import run_job
from uebench.bench.progress import GridProgress
from uebench.bench.store import Store, job_key
from uebench.utils.io import check_output_dir, read_json, write_json


def write_index(plan: Plan, view: Path) -> dict[str, Any]:
    grid = plan.grid
    index = {"grid": grid.name, "layout": grid.table, "ci": grid.ci, "beta_from": grid.beta_from,
             "axes": [a for a, _ in grid.axes], "store": str(plan.store.root),
             "entries": plan.entries}
    write_json(view / "index.json", index)
    return index


def _link_runs(plan: Plan, view: Path) -> None:
    """Readable names for the cells' run directories (symlinks; the index is the truth)."""
    links = view / "runs"
    links.mkdir(parents=True, exist_ok=True)
    wanted = {}
    for e in plan.entries:
        name = "__".join([e["method"], *e["setting"].values(), f"seed{e['seed']}"])
        wanted[re.sub(r"[^A-Za-z0-9_.+=-]+", "-", name)] = plan.store.path("train", e["run"])
    for old in links.iterdir():  # cells of an earlier version of the grid file
        if old.is_symlink() and old.name not in wanted:
            old.unlink()
    for name, target in wanted.items():
        link = links / name
        if link.is_symlink():
            if os.readlink(link) == str(target):
                continue
            link.unlink()
        elif link.exists():  # not ours: leave it alone
            continue
        try:
            link.symlink_to(target, target_is_directory=True)
        except OSError:  # a file system without symlinks: index.json still names every run
            return


def run_plan(plan: Plan, out: Path | str, executor: Executor, *,
             progress: bool = True) -> dict[str, Any]:
    """Run a planned grid and write its view and tables; returns the collected result."""
    view = check_output_dir(Path(out) / plan.grid.name, marker="index.json",
                            what="a uebench grid view")
    index = write_index(plan, view)
    todo = plan.todo()
    # the ETA in progress.json: --dry-run's estimates over the local workers (Ray's
    # parallelism is not known before it runs: counted as one, so its ETA is an upper bound)
    view_progress = GridProgress(
        todo, path=view / "progress.json", enabled=progress,
        estimates={k: v[0] for k, v in estimates(plan.store, todo).items()},
        parallel=getattr(executor, "workers", 1))
    try:
        results = executor.run(todo, view_progress)
    finally:
        view_progress.close()
    _link_runs(plan, view)
    table = Job("table", job_key("table", index), {"index": index}, label="tables",
                payload={"view": str(view)})
    run_job(table)

    return {"view": str(view), "results": results, "failures": view_progress.failures(),
            "tables": read_json(view / "tables.json")}


def run_grid(grid: Grid, *, store: Path | str, out: Path | str, executor: str = "local",
             dry_run: bool = False, progress: bool = True, **executor_options: Any
             ) -> dict[str, Any]:
    """``uebench bench``: plan the grid, print the plan (``dry_run``) or run it.

    Args:
        grid: a loaded grid (:func:`uebench.bench.grid.load_grid`).
        store: the content-addressed store (shared by every grid that should reuse results).
        out: where the grid's view goes (``OUT/<grid.name>``).
        executor: ``local`` or ``ray`` (:data:`uebench.bench.executors.EXECUTORS`).
        dry_run: only describe the plan with its cost estimate (nothing is written).
        executor_options: e.g. ``workers``, ``devices`` (local), ``address`` (ray).
    """
    plan = build_plan(grid, Store(store))
    if dry_run:
        workers = int(executor_options.get("workers") or 1)
        return {"plan": plan, "text": describe_plan(plan, workers=workers)}
    options = {"retries": grid.retries, **executor_options}
    return run_plan(plan, out, get_executor(executor, **options), progress=progress)
