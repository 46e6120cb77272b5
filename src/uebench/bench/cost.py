"""``--dry-run``: the plan (what is cached, what will run) with a cost estimate from measurements.

Estimates come from what the store has already measured, never from constants typed here:

- a training job costs ``rate × epochs × n_train``, with ``rate`` = seconds per image-epoch of
  the completed runs in the store with the same *cost signature* (dataset, model, width, defense,
  SAL engine and options, batch size, precision) and the same training-set size on the same kind
  of device; failing that, of runs with the signature at other sizes (marked "other sizes": the
  per-epoch SAL measurement does not grow with the data, so small runs cost more per image than
  large ones), and failing that, of runs of the same dataset and model (marked ``~``);
- a poison costs its attack's seconds per image on that dataset and preset.

A job with no comparable measurement is listed as unknown, with its size in image-epochs. Run a
small twin of the grid first (``experiments/*-cpu.yaml``) to calibrate on this machine.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from uebench.bench.graph import Job, Plan
from uebench.bench.store import Store
from uebench.train.rundir import read_env, read_summary
from uebench.utils.io import read_json

# how closely a measured run matches a job to estimate, closest first, with the label it gets
LEVELS = (("sized", "measured"), ("signature", "measured, other sizes"),
          ("loose", "~same model+data"))


def train_signature(cfg: Mapping[str, Any], level: str = "sized") -> tuple[Any, ...]:
    head = (cfg["data"]["name"], cfg["model"]["name"], cfg["model"]["width"])
    if level == "loose":
        return head
    sal = cfg["sal"]
    signature = (*head, cfg["defense"], sal["enabled"], sal["engine"],
                 json.dumps(sal["options"], sort_keys=True), cfg["train"]["batch_size"],
                 cfg["train"]["precision"])
    return (*signature, cfg["data"]["train_size"]) if level == "sized" else signature


def _device(run_dir: Path) -> str:
    try:
        env = read_env(run_dir)
    except (OSError, ValueError):
        return "unknown"
    return str(env.get("gpu") or env.get("device") or "unknown")


def measured_rates(store: Store) -> dict[tuple[Any, ...], list[float]]:
    """Seconds per image-epoch (train) or per image (poison) of the store's finished jobs."""
    rates: dict[tuple[Any, ...], list[float]] = {}
    for entry in store.entries("train"):
        if not entry["complete"]:
            continue
        run = Path(entry["path"])
        summary = read_summary(run)
        work = (summary.get("epochs") or 0) * (summary.get("n_train") or 0)
        if work and summary.get("seconds"):
            cfg, device = entry["spec"]["cfg"], _device(run)
            for level, _ in LEVELS:
                key = ("train", level, device, *train_signature(cfg, level))
                rates.setdefault(key, []).append(float(summary["seconds"]) / work)
    for entry in store.entries("poison"):
        if not entry["complete"]:
            continue
        manifest = read_json(Path(entry["path"]) / "manifest.json")
        spec = entry["spec"]
        if manifest.get("n") and manifest.get("generation_seconds") is not None:
            key = ("poison", spec["attack"], spec["preset"], spec["dataset"])
            rates.setdefault(key, []).append(manifest["generation_seconds"] / manifest["n"])
    return rates


def _size(job: Job) -> int:
    if job.kind == "poison":
        return int(job.spec.get("train_size") or 0)
    cfg = job.spec["cfg"]
    return int((cfg["data"]["train_size"] or 0) * cfg["train"]["epochs"])


def estimate(job: Job, rates: Mapping[tuple[Any, ...], list[float]],
             devices: tuple[str, ...]) -> tuple[float | None, str]:
    """(seconds or None, how it was estimated) for one job."""
    size = _size(job)
    if job.kind == "poison":
        found = rates.get(("poison", job.spec["attack"], job.spec["preset"],
                           job.spec["dataset"]))
        if found and size:
            return statistics.median(found) * size, "measured"
        return None, "unknown"
    for level, how in LEVELS:
        for device in devices:
            found = rates.get(("train", level, device, *train_signature(job.spec["cfg"], level)))
            if found and size:
                return statistics.median(found) * size, f"{how} ({device})"
    return None, "unknown"


def estimates(store: Store, jobs: Sequence[Job]) -> dict[str, tuple[float | None, str]]:
    """Every job's :func:`estimate` from the store's measured rates, by job key."""
    rates = measured_rates(store)
    devices = tuple(dict.fromkeys(k[2] for k in rates if k[0] == "train"))
    return {j.key: estimate(j, rates, devices) for j in jobs}


def describe_plan(plan: Plan, *, workers: int = 1, limit: int = 40) -> str:
    """The dry-run text: counts per kind, then every job to run with its estimate."""
    jobs = list(plan.jobs.values())
    todo = plan.todo()
    lines = [f"grid {plan.grid.name}: {len(plan.entries)} cells, {len(jobs)} jobs "
             f"(store {plan.store.root})"]
    for kind in ("poison", "train"):
        n = sum(j.kind == kind for j in jobs)
        left = sum(j.kind == kind for j in todo)
        lines.append(f"  {kind:<7} {n:>4} jobs: {n - left} in the store, {left} to run")
    total, unknown = 0.0, []
    lines.append("to run:" if todo else "nothing to run: every job is in the store")
    guesses = estimates(plan.store, todo)
    for i, job in enumerate(todo):
        seconds, how = guesses[job.key]
        if seconds is None:
            unknown.append(job)
        else:
            total += seconds
        if i < limit:
            cost = "?" if seconds is None else f"{seconds / 60:.1f} min"
            lines.append(f"  {job.label:<70} {cost:>10}  [{how}; {_size(job)} image-epochs]"
                         if job.kind == "train" else
                         f"  {job.label:<70} {cost:>10}  [{how}; {_size(job)} images]")
    if len(todo) > limit:
        lines.append(f"  ... and {len(todo) - limit} more")
    if todo:
        lines.append(f"estimate: {total / 3600:.2f} h of job time for {len(todo) - len(unknown)} "
                     f"measured job(s), ~{total / 3600 / max(workers, 1):.2f} h wall on "
                     f"{workers} worker(s); {len(unknown)} job(s) without a comparable "
                     "measurement in the store (run a CPU twin or one cell first)")
    return "\n".join(lines)
