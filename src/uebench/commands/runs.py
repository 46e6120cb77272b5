"""Training commands: ``train`` (one run), ``evaluate`` (Algorithm 1 with its controls) and
``demo`` (the main job).

Each command registers its arguments and its handler together
(:func:`uebench.commandline.command`) and is a thin wrapper around the Python API."""

from __future__ import annotations

import argparse
from pathlib import Path

from uebench.commandline import add_flag, add_quiet, command
from uebench.commands.common import data_args, parse_seeds, run_args, run_cfg_from_args
from uebench.demo import accuracy_costs, demo_tables, run_demo
from uebench.evaluation import evaluate
from uebench.multitask.cli import cmd_multitask_train
from uebench.multitask.config import MULTITASK_FLAGS
from uebench.train.run import is_complete, train_run
from uebench.utils.stored import save_result


def _train_arguments(p: argparse.ArgumentParser) -> None:
    data_args(p, dataset_required=False)
    run_args(p)
    add_flag(p, "poison")
    p.add_argument("--out", required=True, help="run directory")
    add_flag(p, "tasks", table=MULTITASK_FLAGS)  # present = a multi-task run


@command("train", help="train one model into a run directory", arguments=_train_arguments,
         resumable=True)
def cmd_train(args: argparse.Namespace) -> int:
    if getattr(args, "tasks", None):
        return cmd_multitask_train(args)
    cfg = run_cfg_from_args(args)
    out = Path(args.out)
    reused = is_complete(out)
    summary = train_run(cfg, out, progress=not args.quiet)
    state = "reused complete run" if reused else "done"
    print(
        f"{state}: {out}  test_acc={summary['test_acc']:.4f}  epochs={summary['epochs']}  "
        f"seconds={summary['seconds']:.1f}"
    )
    return 0


def _evaluate_arguments(p: argparse.ArgumentParser) -> None:
    data_args(p)
    run_args(p)
    p.add_argument("--poisons", nargs="+", required=True, help="poison directories")
    p.add_argument("--seeds", default=None,
                   help="several seeds, e.g. 0,1,2: mean ± std and a 95%% interval per run")
    p.add_argument("--beta-from", default="undefended", choices=["undefended", "defended"],
                   help="with --defense: the clean run that sets β and the UD denominator")
    add_flag(p, "sal_engine")
    add_flag(p, "sal_origin")
    p.add_argument("--no-control", action="store_true",
                   help="do not train the random-noise control at each poison's budget")
    p.add_argument("--recalibrate-bn", action="store_true",
                   help="also measure SAL with BatchNorm statistics re-estimated (ud_bn)")
    p.add_argument("--out", required=True)


@command("evaluate", help="Algorithm 1: clean vs poisoned (and random-noise controls) with SAL "
                          "-> UD and statistics", arguments=_evaluate_arguments, resumable=True)
def cmd_evaluate(args: argparse.Namespace) -> int:
    cfg = run_cfg_from_args(args)  # --sal-engine/--sal-origin are flags: key=value wins
    seeds = parse_seeds(args.seeds)
    evaluate(cfg, [Path(p) for p in args.poisons], out=Path(args.out), seeds=seeds,
             beta_from=args.beta_from, controls=not args.no_control,
             recalibrate_bn=args.recalibrate_bn, progress=not args.quiet)
    print((Path(args.out) / "results.md").read_text())
    print(
        f"figures: {Path(args.out) / 'sal_heatmaps.png'}, {Path(args.out) / 'learnable_counts.png'}"
    )
    return 0


def _demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/demo")
    add_flag(p, "train_size")
    add_flag(p, "test_size")
    add_flag(p, "epochs", help="training epochs (default: the demo's)")
    add_flag(p, "seed", default=0)
    p.add_argument("--seeds", default=None,
                   help="several seeds, e.g. 0,1,2: paired t-intervals against the controls "
                        "(each seed costs about as much as the default run)")
    add_flag(p, "sal_engine", default="fast")
    add_flag(p, "data_dir")
    p.add_argument("--save", default=None, metavar="NAME",
                   help="store the tables as results/NAME.json (what README quotes)")
    add_quiet(p)


@command("demo", help="the main job: EM/OPS/LSP against clean training and random-noise "
                      "controls", arguments=_demo_arguments, resumable=True)
def cmd_demo(args: argparse.Namespace) -> int:
    import time


    t0 = time.perf_counter()
    sizes = {k: v for k, v in (("train_size", args.train_size), ("test_size", args.test_size),
                               ("epochs", args.epochs)) if v is not None}
    result = run_demo(args.out, **sizes, seed=args.seed, seeds=parse_seeds(args.seeds),
                      sal_engine=args.sal_engine,
                      data_dir=args.data_dir, progress=not args.quiet)
    out = Path(args.out)
    print((out / "eval" / "results.md").read_text())
    print(accuracy_costs(result))
    figures = result.get("files", {})
    print("figures: " + ", ".join(v for k, v in figures.items() if k.endswith(".png")))
    runs = out / "eval" / ("runs" if len(result.get("seeds") or [0]) == 1 else "seed*/runs")
    print(f"run directories: {runs}; poisons (with preview.png): {out / 'poisons'}; "
          f"controls: {out / 'eval' / 'controls'}")
    seconds = time.perf_counter() - t0
    print(f"total {seconds:.0f}s")
    if args.save:
        command = "uebench demo " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
            if k in ("train_size", "test_size", "epochs", "seeds") and v is not None)
        values = {k: v for k, v in result.items() if k != "files"}
        values["seconds"] = seconds
        path = save_result(args.save, values, command=command.strip(),
                           tables=demo_tables(result))
        print(f"stored: {path}")
    return 0
