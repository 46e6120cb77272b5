"""The Ray executor: every job is a Ray task; Ray does the scheduling, placement and retries.

``uebench bench GRID.yaml --executor ray --address auto`` (a running cluster; ``HOST:PORT`` for a
remote head; no address: a local Ray on this machine). Each job becomes
``ray.remote(...).options(num_cpus=..., num_gpus=..., max_retries=retries)``; a training job gets
its poison job's ``ObjectRef`` as an argument, so Ray starts it only after the poison exists. Ray
re-runs a task whose worker process died (``max_retries``); the retried job resumes from the run's
checkpoint. A task that raises is not retried (Ray's default), and its dependents fail without
running (reported as skipped). Requires ``pip install uebench[ray]``; on a multi-node cluster,
uebench must be importable on every node and ``--store`` must be a shared file system.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from uebench.bench.executors.base import EXECUTORS, error_text
from uebench.bench.graph import Job
from uebench.bench.jobs import FAULT_ENV, run_job
from uebench.bench.progress import GridProgress
from uebench.errors import UebenchError


def _task(job: Job, *dependencies: Any) -> dict[str, Any]:
    """The Ray task body; ``dependencies`` are the results of the jobs this one waits for."""
    return run_job(job)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UebenchError("the ray executor needs Ray: pip install 'uebench[ray]' (or use "
                           "--executor local)") from None
    return ray


def _runtime_env() -> dict[str, Any]:
    """Environment for the tasks: this uebench on the path; the fault switch when it is set."""
    src = str(Path(__file__).resolve().parents[3])  # .../src of src/uebench/bench/executors
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
    env = {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    if os.environ.get(FAULT_ENV):
        env[FAULT_ENV] = os.environ[FAULT_ENV]
    return {"env_vars": env}


@EXECUTORS.register("ray", description="tasks on a Ray cluster (pip install uebench[ray])")
class RayExecutor:
    def __init__(self, address: str | None = None, retries: int = 2,
                 num_cpus: int | None = None) -> None:
        self.address, self.retries, self.num_cpus = address, retries, num_cpus

    def _connect(self, ray: Any) -> bool:
        """Join (or start) Ray unless this process already did; True if we must shut it down."""
        if ray.is_initialized():
            return False
        try:
            ray.init(address=self.address, num_cpus=None if self.address else self.num_cpus,
                     include_dashboard=False, log_to_driver=False, runtime_env=_runtime_env())
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray"
            raise UebenchError(f"could not start or join {where} ({error_text(exc)}); check "
                               "--address (auto needs `ray start --head` first)") from None
        return True

    def run(self, jobs: Sequence[Job], progress: GridProgress) -> dict[str, dict[str, Any]]:
        ray = _import_ray()
        from ray.exceptions import RayError

        started = self._connect(ray)
        remote = ray.remote(_task)
        # a Ray this process did not start keeps its own environment: the fault switch (tests)
        # then travels with each task
        extra = {"runtime_env": _runtime_env()} if os.environ.get(FAULT_ENV) and not started \
            else {}
        refs: dict[str, Any] = {}
        owner: dict[Any, Job] = {}
        try:
            for job in jobs:  # poisons come first: their refs exist when a run needs them
                deps = [refs[d] for d in job.deps if d in refs]
                ref = remote.options(
                    num_cpus=job.resources.get("cpus", 1), num_gpus=job.resources.get("gpus", 0),
                    max_retries=self.retries, name=job.label[:100], **extra,
                ).remote(job, *deps)
                refs[job.key], owner[ref] = ref, job
            return self._collect(ray, RayError, owner, progress)
        finally:
            if started:
                ray.shutdown()

    def _collect(self, ray: Any, error: type, owner: dict[Any, Job],
                 progress: GridProgress) -> dict[str, dict[str, Any]]:
        results: dict[str, dict[str, Any]] = {}
        pending = list(owner)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                job = owner[ref]
                try:
                    result = ray.get(ref)
                except error as exc:
                    failed_dep = any(results.get(d, {}).get("status") in ("failed", "skipped")
                                     for d in job.deps)
                    result = {"status": "skipped" if failed_dep else "failed",
                              "error": "a dependency failed" if failed_dep else error_text(exc)}
                results[job.key] = result
                progress.finished(job.key, result["status"],
                                  **{k: v for k, v in result.items() if k in ("seconds", "error")})
        return results
