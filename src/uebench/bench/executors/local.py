"""The local executor: N worker processes on this machine (``concurrent.futures``, spawned).

Each worker pins itself to one device from ``devices`` in turn (``cuda:0,cuda:1`` round-robin via
``CUDA_VISIBLE_DEVICES``, so every job's ``device: auto`` sees exactly one GPU; ``cpu`` hides the
GPUs) and trains with as many torch threads as its job requests CPUs (default 1). At most
``workers`` jobs are in flight, each started once its dependencies are complete.

A worker that dies (killed, out of memory, ``os._exit``) breaks the process pool and every job in
flight with it; those jobs are re-queued (each counts one attempt, at most ``retries`` more) on a
fresh pool and resume from their last checkpoint. A job that raises is not retried: the same
inputs would raise again.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from uebench.bench.executors.base import EXECUTORS, error_text
from uebench.bench.graph import Job
from uebench.bench.jobs import run_job
from uebench.bench.progress import GridProgress
from uebench.errors import UebenchError


def visible_devices(device: str) -> str | None:
    """``CUDA_VISIBLE_DEVICES`` for a device name (``None``: leave it as it is)."""
    if device == "cpu":
        return ""
    if device == "cuda":
        return None
    kind, _, index = device.partition(":")
    if kind != "cuda" or not index.isdigit():
        raise UebenchError(f"--devices: {device!r} is not cpu, cuda or cuda:N")
    return index


def watch_parent(parent: int, interval: float = 1.0) -> None:
    """Exit this process when its parent (pid ``parent``, the grid process) is gone.

    A worker whose grid process was killed would otherwise go on building its job into the
    store while a re-run of the grid builds the same key again beside it. The pid is passed in
    rather than read here, because the parent may already be dead when the worker starts.
    """

    def watch() -> None:
        while True:
            if os.getppid() != parent:  # re-parented: the grid process is gone
                os._exit(1)
            time.sleep(interval)

    threading.Thread(target=watch, name="uebench-parent-watch", daemon=True).start()


def _init_worker(devices: Sequence[str], counter: Any, parent: int) -> None:
    watch_parent(parent)
    with counter.get_lock():
        slot = counter.value
        counter.value += 1
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if devices:
        visible = visible_devices(devices[slot % len(devices)])
        if visible is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = visible


@EXECUTORS.register("local", description="N worker processes on this machine")
class LocalExecutor:
    def __init__(self, workers: int = 1, devices: Sequence[str] | None = None,
                 retries: int = 2) -> None:
        if workers < 1:
            raise UebenchError(f"--workers must be >= 1, got {workers}")
        for d in devices or ():
            visible_devices(d)  # a bad name fails before any work
        self.workers, self.devices, self.retries = workers, list(devices or ()), retries
        self._ctx = multiprocessing.get_context("spawn")  # no fork of a process holding torch
        self._counter = self._ctx.Value("i", 0)

    def _pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=self._ctx,
                                   initializer=_init_worker,
                                   initargs=(self.devices, self._counter, os.getpid()))

    def run(self, jobs: Sequence[Job], progress: GridProgress) -> dict[str, dict[str, Any]]:
        keys = {j.key for j in jobs}
        waiting = list(jobs)
        results: dict[str, dict[str, Any]] = {}
        attempts: Counter[str] = Counter()
        running: dict[Future, Job] = {}
        pool = self._pool()

        def finish(job: Job, result: dict[str, Any]) -> None:
            results[job.key] = result
            progress.finished(job.key, result["status"], attempts=attempts[job.key] + 1,
                              **{k: v for k, v in result.items() if k in ("seconds", "error")})

        def died(job: Job) -> None:  # its worker died: re-queue, or give up after the retries
            attempts[job.key] += 1
            if attempts[job.key] > self.retries:
                finish(job, {"status": "failed", "error": f"worker died {attempts[job.key]} "
                                                          "times"})
            else:
                waiting.insert(0, job)

        try:
            while waiting or running:
                for job in list(waiting):
                    deps = [results.get(d, {}).get("status") for d in job.deps if d in keys]
                    if any(s in ("failed", "skipped") for s in deps):
                        waiting.remove(job)
                        finish(job, {"status": "skipped", "error": "a dependency failed"})
                    elif all(s in ("built", "cached") for s in deps) and \
                            len(running) < self.workers:
                        waiting.remove(job)
                        running[pool.submit(run_job, job)] = job
                        progress.started(job.key)
                if not running:
                    continue
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                broken = False
                for future in done:
                    job = running.pop(future)
                    try:
                        finish(job, future.result())
                    except BrokenProcessPool:
                        broken = True
                        died(job)
                    except Exception as exc:  # the job raised: report it, keep the grid going
                        finish(job, {"status": "failed", "error": error_text(exc)})
                if broken:  # the pool took every job in flight down with it
                    for job in running.values():
                        died(job)
                    running.clear()
                    pool.shutdown(wait=True, cancel_futures=True)
                    pool = self._pool()
        except BaseException:
            # interrupted (Ctrl-C, SIGTERM as Terminated): a shutdown alone would wait for the
            # jobs in flight to end (an EM generation can take an hour); they resume from their
            # checkpoints on the next run, as after a worker death
            stop_workers(pool)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return results


def stop_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate a pool's worker processes now (CPython keeps them in ``_processes``)."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        if process.is_alive():
            process.terminate()
