"""Benchmark the SAL engines side by side: reference loop vs compat vs fast (vs a strong search).

For each case (LeNet-5 on Fashion-MNIST, ResNet-18 at width 0.25 on CIFAR-10) the script trains a
model briefly with ``uebench.train.fit``, snapshots it after the chosen epochs and, per snapshot,
measures SAL of every layer with

- ``reference``: the plain per-layer loop of the official semantics (first snapshot only: slow);
- ``compat``: the lockstep engine with the same semantics and batch stream (checked against it);
- ``fast``: K-step full-batch PGD on a probe subset (the default engine);
- ``strong``: :func:`uebench.learnability.fast.strong_reference` (many steps, restarts, all data).

It prints Markdown tables: wall time and conv/linear MACs per measurement (the analytic cost model,
checked against ``FlopCounterMode`` with ``--count-flops``), the compat/reference speed-up, and
fast's agreement with the strong search and with compat: Spearman ρ across layers per epoch
(mean), the fraction of layers where fast reaches 95 % of the strong value, and the agreement of
the indicators SAL > β, each method with its own β (2-means midpoint per epoch, mean over epochs,
as the paper's Eq. 4). ``--paper-scale`` adds the analytic cost at the paper's ResNet-18/CIFAR-10
scale (docs/sal.md).

Example (a few minutes on 2 CPU cores):

    .venv/bin/python benchmarks/sal_engines.py --quick
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
from sal_sweep import run_sweep, train_snapshots  # benchmarks/ is on sys.path as a script
from scipy.stats import spearmanr
from torch.utils.flop_counter import FlopCounterMode

import uebench
from uebench.errors import UebenchError
from uebench.learnability import SuffixPlan, run_sal
from uebench.learnability.fast import fast_sal, strong_reference
from uebench.learnability.reference import reference_sal
from uebench.learnability.sal import cost_model, suffix_macs, training_epoch_macs
from uebench.learnability.task import SALData, SALTask, measuring
from uebench.learnability.threshold import learnable_threshold
from uebench.runtime import Runtime
from uebench.utils.stored import (
    add_save_option,
    command_line,
    markdown_lines,
    report_and_store,
    save_result,
)

FAST_DEFAULTS = {k: p.default for k, p in inspect.signature(fast_sal).parameters.items()}


@dataclass
class Case:
    name: str
    dataset: str
    model: str
    width: float
    train_size: int
    epochs: int
    measure: list[int]
    batch_size: int
    padding: int
    rounds: int
    strong_steps: int
    strong_restarts: int
    results: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    seconds: dict[str, list[float]] = field(default_factory=dict)
    cpu_seconds: dict[str, list[float]] = field(default_factory=dict)
    macs: dict[str, float] = field(default_factory=dict)
    measured_macs: dict[str, float] = field(default_factory=dict)
    compat_vs_reference: float = float("nan")


# ----------------------------------------------------------------------------- setup
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", default="lenet5,resnet18", help="comma list: lenet5, resnet18")
    p.add_argument("--quick", action="store_true",
                   help="small presets per case (a few minutes on 2 CPU cores); overrides sizes")
    p.add_argument("--lenet-train", type=int, default=2000, help="Fashion-MNIST images")
    p.add_argument("--resnet-train", type=int, default=512, help="CIFAR-10 images")
    p.add_argument("--epochs", type=int, default=3, help="training epochs")
    p.add_argument("--measure", default="1,3", help="epochs whose snapshot is measured")
    p.add_argument("--rounds", type=int, default=10, help="compat/reference rounds (paper: 10)")
    p.add_argument("--steps", type=int, default=FAST_DEFAULTS["steps"], help="fast engine K")
    p.add_argument("--probe-size", type=int, default=FAST_DEFAULTS["probe_size"],
                   help="fast engine probe images")
    p.add_argument("--eval-size", type=int, default=FAST_DEFAULTS["eval_size"],
                   help="fast engine held-out scoring images")
    p.add_argument("--strong-steps", type=int, default=50)
    p.add_argument("--strong-restarts", type=int, default=3)
    p.add_argument("--repeats", type=int, default=1, help="timing = min over repeats")
    p.add_argument("--no-reference", action="store_true", help="skip the slow reference loop")
    p.add_argument("--count-flops", action="store_true", help="also count with FlopCounterMode")
    p.add_argument("--paper-scale", action="store_true", help="print the paper-scale cost table")
    p.add_argument("--sweep", action="store_true",
                   help="instead: sweep the fast engine's settings against a strong search "
                        "(sal_sweep.py; ~1 h CPU, --quick: a minute)")
    p.add_argument("--sweep-out", default=None,
                   help="JSON file for the sweep's raw per-layer values (resumable per case)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    add_save_option(p)  # the cost tables are stored by name (docs/sal.md includes them)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def make_cases(args: argparse.Namespace) -> list[Case]:
    measure = [int(e) for e in args.measure.split(",") if e.strip()]
    strong = (args.strong_steps, args.strong_restarts)
    table = {
        "lenet5": Case("LeNet-5 / Fashion-MNIST", "fashion-mnist", "lenet5", 1.0,
                       args.lenet_train, args.epochs, measure, 128, 2, args.rounds, *strong),
        "resnet18": Case("ResNet-18 (w 0.25) / CIFAR-10", "cifar10", "resnet18", 0.25,
                         args.resnet_train, args.epochs, measure, 64, 4, args.rounds, *strong),
    }
    if args.quick:  # CPU presets: the ResNet runs 1 round (its cost is linear in rounds)
        table["lenet5"] = Case("LeNet-5 / Fashion-MNIST", "fashion-mnist", "lenet5", 1.0,
                               1000, 2, [1, 2], 128, 2, 10, 20, 1)
        table["resnet18"] = Case("ResNet-18 (w 0.25) / CIFAR-10", "cifar10", "resnet18", 0.25,
                                 128, 2, [2], 32, 4, 1, 10, 0)
    return [table[name.strip()] for name in args.cases.split(",") if name.strip()]


# ----------------------------------------------------------------------------- measuring
def _timed(fn: Any, count: bool, repeats: int) -> tuple[Any, tuple[float, float], float]:
    """(result, (wall s, process CPU s), counted MACs); times are the min over ``repeats``."""
    wall = cpu = float("inf")
    for _ in range(max(1, repeats)):  # min over repeats: robust on a shared machine
        start, start_cpu = time.perf_counter(), time.process_time()
        res = fn()
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    macs = float("nan")
    if count:
        with FlopCounterMode(display=False) as counter:
            fn()
        macs = counter.get_total_flops() / 2
    return res, (wall, cpu), macs


def measure_case(case: Case, args: argparse.Namespace, rt: Runtime) -> None:
    model, x, y, snaps = train_snapshots(case, rt)
    data = SALData(batch_size=case.batch_size, augment="crop_flip", crop_padding=case.padding,
                   drop_last=True)  # the paper code's loader
    common = dict(rt=rt, data=data)
    probe = min(args.probe_size, len(y))
    for snap in snaps:
        model.load_state_dict(snap["state"])
        first = snap is snaps[0]
        count = args.count_flops and first
        seed = (7, snap["epoch"])
        runs = {
            "compat": partial(run_sal, model, x, y, engine="compat",
                              rounds=case.rounds, origin="exact", seed_offsets=seed, **common),
            "fast": partial(run_sal, model, x, y, engine="fast", steps=args.steps,
                            probe_size=probe, eval_size=args.eval_size, seed_offsets=seed,
                            **common),
            "strong": partial(strong_reference, model, x, y, rt=rt,
                              steps=case.strong_steps, restarts=case.strong_restarts,
                              seed_offsets=seed),
        }
        if first and not args.no_reference:
            task = SALTask(model, x, y, rt, data, seed_offsets=seed)
            runs = {"reference": partial(reference_sal, task, rounds=case.rounds), **runs}
        for engine, fn in runs.items():
            counted = count and engine in ("compat", "fast")
            res, (seconds, cpu), macs = _timed(fn, counted, args.repeats)
            case.results.setdefault(engine, []).append(res.values)
            case.seconds.setdefault(engine, []).append(seconds)
            case.cpu_seconds.setdefault(engine, []).append(cpu)
            if macs == macs:
                case.measured_macs[engine] = macs
            print(f"  {case.model} epoch {snap['epoch']}: {engine:9s} {seconds:8.2f} s "
                  f"(cpu {cpu:.2f} s)",
                  file=sys.stderr, flush=True)
        if "reference" in case.results and first:
            ref, comp = case.results["reference"][0], case.results["compat"][0]
            case.compat_vs_reference = max(abs(ref[k] - comp[k]) for k in ref)
    case.macs = analytic_macs(model, x, case, args, probe)


def analytic_macs(model: torch.nn.Module, x: torch.Tensor, case: Case,
                  args: argparse.Namespace, probe: int) -> dict[str, float]:
    with measuring(model, torch.device(args.device)) as m:
        plan = SuffixPlan(m)
        forward, suffix = suffix_macs(plan, x[:2].to(args.device).float() / 255)
    n = len(x)
    costs = cost_model(forward, suffix, n_train=n, batch_size=case.batch_size, rounds=case.rounds,
                       probe_size=probe, eval_size=args.eval_size, steps=args.steps)
    strong = cost_model(forward, suffix, n_train=n, probe_size=n, steps=case.strong_steps,
                        restarts=case.strong_restarts)["fast"]
    paper_rounds = cost_model(forward, suffix, n_train=n, batch_size=case.batch_size)["compat"]
    return {"reference": costs["official"], "compat": costs["compat"], "fast": costs["fast"],
            "strong": strong, "compat@10": paper_rounds}


# ----------------------------------------------------------------------------- agreement
def agreement(a: list[dict[str, float]], b: list[dict[str, float]]) -> dict[str, float]:
    layers = list(a[0])
    ma = np.array([[row[k] for k in layers] for row in a])
    mb = np.array([[row[k] for k in layers] for row in b])
    rho = [spearmanr(x, y).statistic for x, y in zip(ma, mb)]
    within = float(np.mean(ma >= 0.95 * mb))
    # β per method: per epoch the 2-means midpoint, averaged over epochs (paper Eq. 4)
    indicators = float(np.mean((ma > learnable_threshold(ma)) == (mb > learnable_threshold(mb))))
    return {"spearman": float(np.nanmean(rho)), "within95": within, "indicator": indicators}


# ----------------------------------------------------------------------------- reporting
def cost_table(cases: list[Case], args: argparse.Namespace) -> tuple[list[str], list[list[str]]]:
    """Wall time, CPU time and MACs of one measurement per case and engine."""
    header = ["case", "engine", "settings", "wall s", "CPU s", "model GMACs", "counted GMACs",
              "wall vs compat", "CPU vs compat", "MACs vs compat",
              "compat @10 rounds / engine MACs"]
    rows = []
    for case in cases:
        t_compat = np.mean(case.seconds["compat"])
        c_compat = np.mean(case.cpu_seconds["compat"])
        held = max(0, min(args.eval_size or 0, case.train_size - args.probe_size))
        settings = {"reference": f"{case.rounds} rounds, bs {case.batch_size}",
                    "compat": f"{case.rounds} rounds, bs {case.batch_size}",
                    "fast": f"K={args.steps}, probe {min(args.probe_size, case.train_size)}, "
                            f"held-out {held}",
                    "strong": f"K={case.strong_steps}, {case.strong_restarts} restarts"}
        for engine in ("reference", "compat", "fast", "strong"):
            if engine not in case.seconds:
                continue
            t = float(np.mean(case.seconds[engine]))
            c = float(np.mean(case.cpu_seconds[engine]))
            macs = case.macs[engine]
            counted = case.measured_macs.get(engine, float("nan")) / 1e9
            rows.append([case.name, engine, settings[engine], f"{t:.2f}", f"{c:.2f}",
                         f"{macs / 1e9:.3f}", f"{counted:.3f}", f"{t / t_compat:.2f}x",
                         f"{c / c_compat:.2f}x", f"{macs / case.macs['compat']:.3f}x",
                         f"{case.macs['compat@10'] / macs:.2f}"])
    return header, rows


def agreement_table(cases: list[Case]) -> tuple[list[str], list[list[str]]]:
    """Fast against the strong search and against compat, per case."""
    header = ["case", "epochs", "layers", "compat vs reference max abs diff", "ρ fast~strong",
              "fast ≥ 95 % strong", "ind. fast~strong", "ρ fast~compat", "ind. fast~compat"]
    rows = []
    for case in cases:
        fs = agreement(case.results["fast"], case.results["strong"])
        fc = agreement(case.results["fast"], case.results["compat"])
        rows.append([case.name, ",".join(map(str, case.measure)), str(len(case.results["fast"][0])),
                     f"{case.compat_vs_reference:.2e}", f"{fs['spearman']:.3f}",
                     f"{fs['within95']:.1%}", f"{fs['indicator']:.1%}", f"{fc['spearman']:.3f}",
                     f"{fc['indicator']:.1%}"])
    return header, rows


def paper_scale_table(forward: int, suffix: dict[str, int]) -> tuple[list[str], list[list[str]]]:
    """Analytic cost of one measurement, CIFAR-10 ResNet-18 (width 1; ``paper_scale_macs``),
    paper settings (no training, no timing: docs/sal.md's cost table, checked by
    tests/test_sal.py)."""
    header = ["engine", "settings", "PFLOP (2 x MACs)", "training epochs (3F/img)", "vs official",
              "vs compat"]
    new = {k: FAST_DEFAULTS[k] for k in ("steps", "probe_size", "eval_size")}
    variants = [("official", "paper code", {}), ("compat", "lockstep", {}),
                ("fast", "K=5, probe 10k, eval = probe", {"steps": 5, "probe_size": 10_000,
                                                           "eval_size": None}),
                ("fast", "K=5, probe 2048, eval = probe (old default)",
                 {"steps": 5, "probe_size": 2048, "eval_size": None}),
                ("fast", "K={steps}, probe {probe_size}, held-out {eval_size} (default)".format(
                    **new), new)]
    base = cost_model(forward, suffix, n_train=50_000)
    epoch = training_epoch_macs(forward, 50_000)
    rows = []
    for engine, label, opts in variants:
        macs = cost_model(forward, suffix, n_train=50_000, **opts)[engine]
        rows.append([engine, label, f"{2 * macs / 1e15:.2f}", f"{macs / epoch:.2f}",
                     f"{base['official'] / macs:.1f}x", f"{base['compat'] / macs:.1f}x"])
    return header, rows


def paper_scale_macs() -> tuple[int, dict[str, int]]:
    """F and the per-layer suffix MACs of the CIFAR-10 ResNet-18 (width 1), per 32×32 image."""
    model = uebench.get_model("resnet18")
    with measuring(model, torch.device("cpu")) as m:
        return suffix_macs(SuffixPlan(m), torch.rand(1, 3, 32, 32))


def print_table(title: str, table: tuple[list[str], list[list[str]]]) -> None:
    print(f"\n### {title}\n")
    print("\n".join(markdown_lines(*table)))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.sweep:  # its tables are printed from the sweep's JSON; --save stores them as printed
        report_and_store(args.save, "benchmarks/sal_engines.py", lambda: run_sweep(args), argv)
        return 0
    rt = Runtime(device=args.device, seed=args.seed, progress=False)
    cases = []
    for case in make_cases(args):
        try:
            measure_case(case, args, rt)
        except UebenchError as exc:
            print(f"skipping {case.name}: {exc}", file=sys.stderr)
            continue
        cases.append(case)
    tables = {}
    if cases:
        tables["cost"] = cost_table(cases, args)
        print_table(f"SAL engines: cost per measurement (K={args.steps}, "
                    f"{torch.get_num_threads()} CPU thread(s), fp32, wall time = min over "
                    f"{args.repeats} run(s))", tables["cost"])
        tables["agreement"] = agreement_table(cases)
        print_table("Agreement across layers (per-epoch Spearman ρ averaged; indicator = "
                    "SAL > β, each method with its own β)", tables["agreement"])
    if args.paper_scale:
        forward, suffix = paper_scale_macs()
        tables["paper-scale"] = paper_scale_table(forward, suffix)
        print_table(f"Paper scale (ResNet-18, CIFAR-10 50k, bs 256, 10 rounds): F = {forward:,} "
                    f"MACs/img, ΣS = {sum(suffix.values()) / forward:.2f} F", tables["paper-scale"])
    if args.save:
        path = save_result(args.save, {"cases": [c.name for c in cases],
                                       "threads": torch.get_num_threads(), "steps": args.steps},
                           command=command_line("benchmarks/sal_engines.py", argv),
                           tables=tables)
        print(f"stored: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
