"""Job kinds: each a function of its job's spec that calls the existing API in a worker process.

- ``poison``: :func:`uebench.attacks.generate.generate_poison` into ``STORE/poisons/<key>``;
- ``train``: :func:`uebench.train.run.train_run` into ``STORE/runs/<key>`` (resumable: a retried
  job continues from the last finished epoch's checkpoint);
- ``table``: :func:`uebench.bench.report.write_reports` for a grid's view (reads run directories).

Every kind first takes the key's store lock (:meth:`Store.building`): a second worker or grid that
needs the same key waits, then reuses the finished result (status ``cached``).

Fault injection (tests, ``docs/bench.md``): ``UEBENCH_BENCH_FAULT="epoch=2,match=ops,dir=D"`` makes
every training job whose label contains ``match`` kill its own process (``os._exit``) after epoch 2
has trained, once per job (a marker file in ``D`` records it): a worker dying mid-job.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from uebench.attacks.generate import generate_poison
from uebench.bench.graph import Job
from uebench.bench.report import write_reports
from uebench.bench.store import Store
from uebench.config import RunCfg, from_dict
from uebench.errors import UebenchError
from uebench.poisons.store import content_hash
from uebench.registry import Registry
from uebench.train.run import train_run

JobFn = Callable[[Job], str]
JOB_KINDS: Registry[JobFn] = Registry("bench job kind")
FAULT_ENV = "UEBENCH_BENCH_FAULT"


def run_job(job: Job) -> dict[str, Any]:
    """Run one job here (in a worker); returns ``{key, kind, status, seconds, pid}``.

    ``status`` is ``built`` (computed now, possibly resuming) or ``cached`` (already complete).
    Torch uses as many threads as the job requested CPUs.
    """
    import torch

    torch.set_num_threads(max(1, int(job.resources.get("cpus", 1))))
    t0 = time.perf_counter()
    status = JOB_KINDS.get(job.kind)(job)
    return {"key": job.key, "kind": job.kind, "status": status,
            "seconds": time.perf_counter() - t0, "pid": os.getpid()}


@JOB_KINDS.register("poison")
def poison_job(job: Job) -> str:
    store = Store(job.payload["store"])
    store.record("poison", job.key, job.spec)
    with store.building("poison", job.key) as out:
        if store.is_complete("poison", job.key):
            return "cached"
        s = job.spec
        generate_poison(s["attack"], dataset=s["dataset"], out=out, data_dir=s["data_dir"],
                        train_size=s["train_size"], seed=s["seed"], preset=s["preset"],
                        params=dict(s["params"]), progress=False)
    return "built"


def poison_path(job: Job, store: Store) -> str | None:
    """The directory of a training job's poison, checked to hold the content the key names."""
    ref = job.spec.get("poison")
    if ref is None:
        return None
    kind, _, value = str(ref).partition(":")
    if kind == "poison":
        if not store.is_complete("poison", value):
            raise UebenchError(f"{job.label}: its poison {store.path('poison', value)} is not "
                               "complete (its generation job failed or was skipped)")
        return str(store.path("poison", value))

    path = str(job.payload["poison_path"])
    if content_hash(path) != value:
        raise UebenchError(f"{path} changed since the grid was planned (its content hash "
                           "differs): re-run the command to plan with the new poison")
    return path


@JOB_KINDS.register("train")
def train_job(job: Job) -> str:
    store = Store(job.payload["store"])
    store.record("train", job.key, job.spec)
    cfg = from_dict(RunCfg, job.spec["cfg"])
    cfg = dataclasses.replace(cfg, poison=poison_path(job, store))
    with store.building("train", job.key) as out:
        if store.is_complete("train", job.key):
            return "cached"
        train_run(cfg, out, progress=False, callbacks=fault_callbacks(job))
    return "built"


@JOB_KINDS.register("table")
def table_job(job: Job) -> str:
    write_reports(Path(job.payload["view"]))
    return "built"


# ----------------------------------------------------------------------------- fault injection


def parse_fault(text: str) -> dict[str, str]:
    """``"epoch=2,match=ops,dir=D"`` -> dict; a malformed value is an error, not ignored."""
    fields = dict(item.split("=", 1) for item in text.split(",") if "=" in item)
    if not {"epoch", "dir"} <= set(fields) or not fields["epoch"].isdigit():
        raise UebenchError(f"{FAULT_ENV}={text!r}: expected epoch=N,dir=DIR[,match=TEXT]")
    return fields


class _ExitOnce:
    """Kill this process after ``epoch`` trained (before its checkpoint), once per marker."""

    def __init__(self, epoch: int, marker: Path) -> None:
        self.epoch, self.marker = epoch, marker

    def __call__(self, ctx: Any) -> Mapping[str, Any] | None:
        if ctx.epoch == self.epoch and not self.marker.exists():
            self.marker.parent.mkdir(parents=True, exist_ok=True)
            self.marker.write_text(str(os.getpid()))
            os._exit(77)  # no cleanup, no exception: as if the worker were killed
        return None


def fault_callbacks(job: Job) -> list[Any]:
    text = os.environ.get(FAULT_ENV)
    if not text:
        return []
    fault = parse_fault(text)
    if fault.get("match", "") not in job.label:
        return []
    return [_ExitOnce(int(fault["epoch"]), Path(fault["dir"]) / f"{job.key[:16]}.exited")]
