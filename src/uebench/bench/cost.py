"""``--dry-run``: the plan (what is cached, what will run) with a cost estimate from measurements.

Estimates come from what the store has already measured, never from constants typed here:

- a training job costs ``epochs × (seconds per epoch)``, read from the completed runs in the
  store with the same *cost signature* (dataset, model, width, defense, SAL engine and options,
  batch size, precision) on the same kind of device: the runs that trained on as many images as
  the job (a partially poisoned run trains on more or fewer than its clean set); failing that,
  a line ``seconds per epoch = a × images + b`` fitted over the signature's runs at other sizes
  (``b`` is the per-epoch SAL measurement, which does not grow with the data), or proportional
  to the images where only one size was measured; failing that, the same from runs of the same
  dataset and model (marked ``~``);
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
from uebench.train.partial import training_images
from uebench.train.rundir import read_env, read_summary
from uebench.utils.io import read_json

# how closely a measured run matches a job to estimate, closest first, with the label it gets
LEVELS = (("sized", "measured"), ("signature", "measured, other sizes"),
          ("loose", "~same model+data"))


def train_signature(cfg: Mapping[str, Any], level: str = "sized",
                    images: int | None = None) -> tuple[Any, ...]:
    """What a training run's cost depends on, at ``level`` (:data:`LEVELS`); ``sized`` adds the
    number of images it trains on (``images``, default the clean training-set size)."""
    head = (cfg["data"]["name"], cfg["model"]["name"], cfg["model"]["width"])
    if level == "loose":
        return head
    sal = cfg["sal"]
    signature = (*head, cfg["defense"], sal["enabled"], sal["engine"],
                 json.dumps(sal["options"], sort_keys=True), cfg["train"]["batch_size"],
                 cfg["train"]["precision"])
    if level != "sized":
        return signature
    return (*signature, cfg["data"]["train_size"] if images is None else images)


def _device(run_dir: Path) -> str:
    try:
        env = read_env(run_dir)
    except (OSError, ValueError):
        return "unknown"
    return str(env.get("gpu") or env.get("device") or "unknown")


def measured_rates(store: Store) -> dict[tuple[Any, ...], list[Any]]:
    """Per key, the store's finished jobs: (images, seconds per epoch) of a training run,
    seconds per image of a poison."""
    rates: dict[tuple[Any, ...], list[Any]] = {}
    for entry in store.entries("train"):
        if not entry["complete"]:
            continue
        run = Path(entry["path"])
        summary = read_summary(run)
        epochs, images = summary.get("epochs") or 0, summary.get("n_train") or 0
        if epochs and images and summary.get("seconds"):
            cfg, device = entry["spec"]["cfg"], _device(run)
            for level, _ in LEVELS:
                key = ("train", level, device, *train_signature(cfg, level, images))
                rates.setdefault(key, []).append((images, float(summary["seconds"]) / epochs))
    for entry in store.entries("poison"):
        if not entry["complete"]:
            continue
        manifest = read_json(Path(entry["path"]) / "manifest.json")
        spec = entry["spec"]
        if manifest.get("n") and manifest.get("generation_seconds") is not None:
            key = ("poison", spec["attack"], spec["preset"], spec["dataset"])
            rates.setdefault(key, []).append(manifest["generation_seconds"] / manifest["n"])
    return rates


def _images(job: Job) -> int:
    """The images a training job trains on (partial poisoning adds or drops some)."""
    cfg = job.spec["cfg"]
    n = int(cfg["data"]["train_size"] or 0)
    if job.spec.get("poison") is not None:
        n = training_images(n, cfg.get("poison_ratio", 1.0), cfg.get("poison_mix", "replace"))
    return n


def _size(job: Job) -> int:
    if job.kind == "poison":
        return int(job.spec.get("train_size") or 0)
    return _images(job) * int(job.spec["cfg"]["train"]["epochs"])


def per_epoch(samples: Sequence[tuple[int, float]], images: int) -> float:
    """Seconds per epoch at ``images`` from measured (images, seconds per epoch): the median at
    that size; else the least-squares line a × images + b over the sizes measured (a, b >= 0);
    else proportional to the images."""
    same = [t for n, t in samples if n == images]
    if same:
        return statistics.median(same)
    if len({n for n, _ in samples}) >= 2:
        a, b = statistics.linear_regression([float(n) for n, _ in samples],
                                            [t for _, t in samples])
        if a >= 0 and b >= 0:
            return a * images + b
    return statistics.median(t / n for n, t in samples) * images


def estimate(job: Job, rates: Mapping[tuple[Any, ...], list[Any]],
             devices: tuple[str, ...]) -> tuple[float | None, str]:
    """(seconds or None, how it was estimated) for one job."""
    if job.kind == "poison":
        size = _size(job)
        found = rates.get(("poison", job.spec["attack"], job.spec["preset"],
                           job.spec["dataset"]))
        if found and size:
            return statistics.median(found) * size, "measured"
        return None, "unknown"
    images, cfg = _images(job), job.spec["cfg"]
    for level, how in LEVELS:
        for device in devices:
            found = rates.get(("train", level, device, *train_signature(cfg, level, images)))
            if found and images:
                return per_epoch(found, images) * int(cfg["train"]["epochs"]), f"{how} ({device})"
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
