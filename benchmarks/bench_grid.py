"""Grid throughput (1 vs 2 local workers, local Ray) and the store's overhead per job.

    .venv/bin/python benchmarks/bench_grid.py [--epochs 8] [--train-size 2000] [--seeds 3]

The grid: Fashion-MNIST (2,000 train / 500 test images), LeNet-5, OPS, random noise and LSP
poisons plus clean training, seeds 0..S-1, per-epoch SAL (fast engine, 128-image probe). Each
executor starts from an empty store (everything is computed); wall time is the whole command
(worker start-up included). The store's overhead is measured separately, without training:
planning (keys for every job) and a worker's bookkeeping around a job (spec file, key lock,
completion check), per job; then a whole re-run of the finished grid (nothing to compute).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from uebench.bench import Store, grid_from_dict, run_grid
from uebench.bench.graph import build_plan
from uebench.bench.jobs import run_job
from uebench.utils.stored import add_save_option, report_and_store


def grid(epochs: int, seeds: int, train_size: int):
    return grid_from_dict({
        "name": "throughput", "table": "table1",
        "base": {"data": {"name": "fashion-mnist", "train_size": train_size, "test_size": 500},
                 "model": {"name": "lenet5"},
                 "train": {"epochs": epochs, "optimizer": "sgd", "lr": 0.05, "batch_size": 64,
                           "schedule": "cosine", "augment": "none"},
                 "sal": {"options": {"probe_size": 128}}},
        "grid": {"method": ["ops", "random", "lsp"], "seed": list(range(seeds))},
    })


def timed_grid(tmp: Path, name: str, g, executor: str, **options) -> dict:
    store, out = tmp / name / "store", tmp / name / "out"
    t0 = time.perf_counter()
    if executor == "ray":
        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            result = run_grid(g, store=store, out=out, executor="ray", progress=False)
        finally:
            ray.shutdown()
    else:
        result = run_grid(g, store=store, out=out, executor="local", progress=False, **options)
    wall = time.perf_counter() - t0
    assert not result["failures"], result["failures"]
    job_seconds = sum(r["seconds"] for r in result["results"].values())
    return {"name": name, "wall": wall, "jobs": len(result["results"]),
            "job_seconds": job_seconds, "tables": result["tables"], "store": store}


def store_overhead(g, store: Path, out: Path) -> dict:
    t0 = time.perf_counter()
    plan = build_plan(g, Store(store))
    plan_s = (time.perf_counter() - t0) / len(plan.jobs)
    jobs = list(plan.jobs.values())
    times = []
    for job in jobs:  # every job is complete: run_job does only the store's bookkeeping
        t = time.perf_counter()
        assert run_job(job)["status"] == "cached"
        times.append(time.perf_counter() - t)
    t0 = time.perf_counter()
    again = run_grid(g, store=store, out=out, progress=False)
    rerun = time.perf_counter() - t0
    assert again["results"] == {}
    return {"plan_ms": 1000 * plan_s, "bookkeeping_ms": 1000 * statistics.median(times),
            "rerun_s": rerun, "jobs": len(jobs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--train-size", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--no-ray", action="store_true")
    add_save_option(parser)
    args = parser.parse_args()
    report_and_store(args.save, "benchmarks/bench_grid.py", lambda: report(args))


def report(args: argparse.Namespace) -> None:
    os.environ.setdefault("UEBENCH_NO_PROGRESS", "1")
    g = grid(args.epochs, args.seeds, args.train_size)
    tmp = Path(tempfile.mkdtemp(prefix="bench_grid_"))
    try:
        runs = [timed_grid(tmp, "local, 1 worker", g, "local", workers=1),
                timed_grid(tmp, "local, 2 workers", g, "local", workers=2)]
        if not args.no_ray:
            runs.append(timed_grid(tmp, "ray (local, 2 CPUs)", g, "ray"))
        same = all(r["tables"]["cells"] == runs[0]["tables"]["cells"] for r in runs)
        over = store_overhead(g, runs[0]["store"], tmp / "rerun")
        load = os.getloadavg()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"grid: {runs[0]['jobs']} jobs (3 poisons + {runs[0]['jobs'] - 3} training runs, "
          f"LeNet-5, {args.epochs} epochs, {args.train_size} Fashion-MNIST images); identical "
          "tables across "
          f"executors: {same}; load average at the end {load[0]:.1f} / {load[1]:.1f} / "
          f"{load[2]:.1f} (1 / 5 / 15 min) on {os.cpu_count()} cores\n")
    print("| executor | wall s | jobs/min | sum of job s | speed-up vs 1 worker |")
    print("|---|---:|---:|---:|---:|")
    for r in runs:
        print(f"| {r['name']} | {r['wall']:.1f} | {60 * r['jobs'] / r['wall']:.1f} | "
              f"{r['job_seconds']:.1f} | {runs[0]['wall'] / r['wall']:.2f}x |")
    print(f"\nstore overhead per job ({over['jobs']} jobs): planning (key) "
          f"{over['plan_ms']:.1f} ms, a worker's bookkeeping (spec file, lock, completion check) "
          f"{over['bookkeeping_ms']:.1f} ms (median); re-running the finished grid (nothing to "
          f"compute, tables rewritten): {over['rerun_s']:.1f} s")


if __name__ == "__main__":
    main()
