"""Loss-landscape costs: grid evaluation (batched vs a plain loop) and trajectory storage.

1. Grid evaluation: loss at G grid points on n images, ``evaluate_points`` (vmap over points,
   chunked to a memory budget) vs ``evaluate_points_loop`` (copy each point's weights into the
   model, run the data). Interleaved (loop, batched, loop, batched), best of the repeats.
2. Trajectory storage per run: bytes per snapshot as written (safetensors chunks, measured by
   recording real snapshots), times the default ~150 snapshots (``default_every``), and the
   cost of recording: ``fit`` with vs without the recorder on the same run (LeNet-5).

    .venv/bin/python benchmarks/landscape.py            # full table (~10 min on 2 busy cores)
    .venv/bin/python benchmarks/landscape.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from uebench import Runtime, get_model, load_dataset
from uebench.config import TrainCfg
from uebench.landscape import TrajectoryRecorder, evaluate_points, evaluate_points_loop
from uebench.landscape.directions import random_directions
from uebench.train import fit
from uebench.train.trajectory import DEFAULT_SNAPSHOTS
from uebench.train.trajectory_store import trajectory_dir
from uebench.utils.stored import add_save_option, report_and_store

CASES = {  # name: (dataset, model, width, image shape)
    "LeNet-5 / Fashion-MNIST": ("fashion-mnist", "lenet5", 1.0, (1, 28, 28)),
    "ResNet-18 / CIFAR-10": ("cifar10", "resnet18", 1.0, (3, 32, 32)),
}


def _model(name: str, width: float, shape: tuple[int, int, int]) -> torch.nn.Module:
    torch.manual_seed(0)
    return get_model(name, in_channels=shape[0], image_size=shape[1:], width=width).eval()


def grid_rates(model_name: str, width: float, shape: tuple[int, int, int], points: int,
               n: int, batch: int, budgets: tuple[float, ...], repeats: int) -> dict[str, Any]:
    """Grid points per second: the loop, and batched at each memory budget (MB per chunk)."""
    model = _model(model_name, width, shape)
    weights = {k: p.detach() for k, p in model.named_parameters()}
    dirs = random_directions(weights, 2, seed=0)
    side = int(points ** 0.5)
    coeffs = torch.cartesian_prod(torch.linspace(-1, 1, side), torch.linspace(-1, 1, side))
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, *shape, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    rates: dict[str, list[float]] = {"loop": [], **{f"{b:g}": [] for b in budgets}}
    diff = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        ref = evaluate_points_loop(model, weights, dirs, coeffs, x, y, batch_size=batch)
        rates["loop"].append(coeffs.shape[0] / (time.perf_counter() - t0))
        for budget in budgets:
            t0 = time.perf_counter()
            got = evaluate_points(model, weights, dirs, coeffs, x, y, batch_size=batch,
                                  memory_mb=budget)
            rates[f"{budget:g}"].append(coeffs.shape[0] / (time.perf_counter() - t0))
            diff = max(diff, float((got - ref).abs().max()))
    return {"rates": {k: max(v) for k, v in rates.items()}, "max_abs_diff": diff,
            "points": int(coeffs.shape[0])}


def storage(model_name: str, width: float, shape: tuple[int, int, int], snapshots: int,
            dtype: str) -> dict[str, float]:
    """Bytes per snapshot on disk (measured from ``snapshots`` recorded ones)."""
    model = _model(model_name, width, shape)
    with tempfile.TemporaryDirectory() as tmp:
        rec = TrajectoryRecorder(tmp, every=1, memory_mb=64, dtype=dtype)
        rec.begin(model)
        for step in range(1, snapshots):
            rec.on_step(model, step, 1)
        rec.flush()
        size = sum(p.stat().st_size for p in trajectory_dir(tmp).iterdir())
    params = sum(p.numel() for p in model.parameters())
    return {"params": params, "per_snapshot": size / snapshots,
            "per_run": size / snapshots * DEFAULT_SNAPSHOTS}


def recording_overhead(n: int, epochs: int, repeats: int) -> dict[str, float]:
    """Seconds of LeNet-5 training with and without a recorder at the default interval."""
    s = load_dataset("fashion-mnist", train_size=n, test_size=100)
    cfg = TrainCfg(epochs=epochs, batch_size=32, lr=0.01, schedule="constant", augment="none")
    steps = epochs * -(-n // 32)
    times: dict[str, list[float]] = {"plain": [], "recorded": []}
    warm = dataclasses.replace(cfg, epochs=1)  # allocator and kernels warm for both sides
    fit(_model("lenet5", 1.0, (1, 28, 28)).train(), s.train.x[:256], s.train.y[:256], cfg=warm,
        rt=Runtime("cpu", 0, False))
    for _ in range(repeats):
        for kind in ("plain", "recorded"):
            model = _model("lenet5", 1.0, (1, 28, 28)).train()
            with tempfile.TemporaryDirectory() as tmp:
                hooks = []
                if kind == "recorded":
                    rec = TrajectoryRecorder(Path(tmp), every=max(1, steps // DEFAULT_SNAPSHOTS),
                                             steps_per_epoch=-(-n // 32))
                    rec.begin(model)
                    hooks = [rec]
                t0 = time.perf_counter()
                fit(model, s.train.x, s.train.y, cfg=cfg, rt=Runtime("cpu", 0, False),
                    step_hooks=hooks)
                times[kind].append(time.perf_counter() - t0)
    return {k: min(v) for k, v in times.items()}


def grid_cases(quick: bool) -> dict[str, tuple[str, float, tuple[int, int, int], int, int, int]]:
    """name: (model, width, image shape, grid points, images, batch)."""
    return {
        "linear 12->10 / toy": ("linear", 1.0, (1, 1, 12), 100 if quick else 400, 4000, 1024),
        "LeNet-5 / Fashion-MNIST": ("lenet5", 1.0, (1, 28, 28), 36 if quick else 100,
                                    256 if quick else 1000, 256),
        "ResNet-18 / CIFAR-10": ("resnet18", 1.0, (3, 32, 32), 4 if quick else 16,
                                 32 if quick else 128, 128),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=2)
    add_save_option(ap)
    args = ap.parse_args()
    report_and_store(args.save, "benchmarks/landscape.py", lambda: report(args))


def report(args: argparse.Namespace) -> None:
    q = args.quick
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}\n")
    budgets = (16.0, 64.0, 512.0)
    print("| model | grid points | images | batch | loop points/s | "
          + " | ".join(f"batched {b:g} MB" for b in budgets) + " | max abs diff |")
    print("|---|---:|---:|---:|---:|" + "---:|" * len(budgets) + "---:|")
    for name, (model, width, shape, points, n, batch) in grid_cases(q).items():
        r = grid_rates(model, width, shape, points, n, batch, budgets, args.repeats)
        loop = r["rates"]["loop"]
        cells = " | ".join(f"{r['rates'][f'{b:g}']:.1f} ({r['rates'][f'{b:g}'] / loop:.2f}x)"
                           for b in budgets)
        print(f"| {name} | {r['points']} | {n} | {batch} | {loop:.1f} | {cells} | "
              f"{r['max_abs_diff']:.1e} |")
    print("\n| model | parameters | dtype | MB per snapshot | MB per run "
          f"(~{DEFAULT_SNAPSHOTS} snapshots) |")
    print("|---|---:|---|---:|---:|")
    for name, (_, model, width, shape) in CASES.items():
        for dtype in ("float32", "float16"):
            r = storage(model, width, shape, 3 if q else 5, dtype)
            print(f"| {name} | {r['params']:,} | {dtype} | {r['per_snapshot'] / 2**20:.3f} | "
                  f"{r['per_run'] / 2**20:.1f} |")
    o = recording_overhead(500 if q else 2000, 1 if q else 3, args.repeats)
    print(f"\nLeNet-5 training with a trajectory recorder: {o['recorded']:.2f} s vs "
          f"{o['plain']:.2f} s without ({100 * (o['recorded'] / o['plain'] - 1):+.1f} %)")


if __name__ == "__main__":
    main()
