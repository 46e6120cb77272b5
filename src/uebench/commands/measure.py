"""Measuring stored runs: ``ud``, ``sal``, ``landscape``, ``plot`` and ``reproduce``.

Each command registers its arguments and its handler together
(:func:`uebench.commandline.command`) and is a thin wrapper around the Python API."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from uebench.commandline import add_flag, add_quiet, command
from uebench.config import parse_params
from uebench.errors import UebenchError
from uebench.learnability.distance import checked_beta
from uebench.learnability.posthoc import measure_run
from uebench.learnability.report import recompute
from uebench.utils.stored import markdown_lines, save_result


def _ud_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clean", required=True, help="clean run directory")
    p.add_argument("--poisoned", nargs="+", required=True, help="poisoned run directories")
    p.add_argument("--beta", type=float, default=None, help="use this threshold instead")
    p.add_argument("--decimals", type=int, default=None, help="round SAL like the paper's logs (4)")
    p.add_argument("--sal-tag", default=None, help="use post-hoc SAL (uebench sal --tag TAG)")
    p.add_argument("--out", default=None, help="write results + figures here")


@command("ud", help="recompute #LP / UD from stored runs", arguments=_ud_arguments)
def cmd_ud(args: argparse.Namespace) -> int:
    checked_beta(args.beta, name="--beta")
    table = recompute(
        Path(args.clean),
        [Path(p) for p in args.poisoned],
        out_dir=Path(args.out) if args.out else None,
        beta=args.beta,
        decimals=args.decimals,
        sal_tag=args.sal_tag,
    )
    if args.out:
        print((Path(args.out) / "results.md").read_text())
    else:
        json.dump(table, sys.stdout, indent=2, default=str)
        print()
    return 0


def _sal_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", help="run directories trained with train.snapshots=true")
    p.add_argument("--tag", required=True, help="name of this measurement, e.g. compat or eps0.1")
    p.add_argument("--engine", default="fast", help="SAL engine (fast or compat)")
    p.add_argument("--eps", type=float, default=0.05, help="relative radius (paper 0.05)")
    p.add_argument("--origin", default=None, help="official or exact (engine default)")
    p.add_argument("--every", type=int, default=1, help="every k-th epoch, counted from the last")
    p.add_argument("--epochs", default=None, help="comma-separated epochs instead of --every")
    p.add_argument("--recalibrate-bn", action="store_true",
                   help="re-estimate BatchNorm statistics for each snapshot first")
    p.add_argument("--subset", type=int, default=None,
                   help="measure on a seeded stratified subset of N training images")
    p.add_argument("--origin-from", default=None, metavar="FIELD",
                   help="metrics.jsonl field for the official origin (default "
                        "train_loss_official; train_loss = the paper's formula under drop_last)")
    add_flag(p, "device")
    add_quiet(p)
    p.add_argument("--option", dest="options", action="append", default=[], metavar="KEY=VALUE",
                   help="an engine option, e.g. --option probe_size=1024 (repeatable)")


@command("sal", help="measure SAL after training from a run's per-epoch snapshots",
         arguments=_sal_arguments, resumable=True)
def cmd_sal(args: argparse.Namespace) -> int:
    epochs = None
    if args.epochs:
        try:
            epochs = [int(e) for e in args.epochs.split(",") if e.strip()]
        except ValueError:
            raise UebenchError(
                f"--epochs must be comma-separated integers, got {args.epochs!r}"
            ) from None
    options = parse_params(args.options)
    for run in args.runs:
        rows = measure_run(Path(run), tag=args.tag, engine=args.engine, eps=args.eps,
                           origin=args.origin, every=args.every, epochs=epochs, options=options,
                           device=args.device, recalibrate_bn=args.recalibrate_bn,
                           subset=args.subset, origin_from=args.origin_from,
                           progress=not args.quiet)
        print(f"{run}: SAL '{args.tag}' for epochs {[r['epoch'] for r in rows]}")
    return 0


def _landscape_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", help="run directories of one architecture (clean first)")
    p.add_argument("--out", required=True)
    p.add_argument("--names", default=None, help="panel titles, comma-separated")
    p.add_argument("--basis", default="pca", help="pca (the paper) or random (filter-normalised)")
    p.add_argument("--grid", type=int, default=21, help="grid points per axis")
    p.add_argument("--data", default="train", help="train (each run's own), clean or test")
    p.add_argument("--samples", type=int, default=1000, help="images the loss is evaluated on")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-interpolation", action="store_true", help="skip the init->final line")


@command("landscape", help="loss landscapes of runs recorded with trajectory.enabled",
         arguments=_landscape_arguments)
def cmd_landscape(args: argparse.Namespace) -> int:
    from uebench.landscape import landscape  # lazy: matplotlib, for the commands that draw

    names = [n.strip() for n in args.names.split(",")] if args.names else None
    result = landscape(args.runs, Path(args.out), names=names, basis=args.basis, grid=args.grid,
                       data=args.data, n_samples=args.samples, seed=args.seed,
                       interpolation_points=0 if args.no_interpolation else 31)
    for path in result.get("files", []):
        print(path)
    return 0


def _plot_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("directory")
    p.add_argument("--out", default=None, help="default DIRECTORY/figures")
    p.add_argument("--no-compute", action="store_true",
                   help="draw only from stored numbers (no loss-surface evaluation)")
    p.add_argument("--grid", type=int, default=21)
    p.add_argument("--samples", type=int, default=1000)


@command("plot", help="regenerate every figure a run or evaluation dir supports",
         arguments=_plot_arguments)
def cmd_plot(args: argparse.Namespace) -> int:
    from uebench.landscape import plot_all  # lazy: matplotlib, for the commands that draw
    from uebench.multitask.plots import plot_multitask, supports  # lazy: matplotlib

    out = Path(args.out) if args.out else None
    if supports(args.directory):  # a multi-task run, evaluation (Fig. 4) or matrix (Fig. 8)
        report = plot_multitask(args.directory, out=out)
    else:
        report = plot_all(Path(args.directory), out=out, compute_landscape=not args.no_compute,
                          landscape_options={"grid": args.grid, "n_samples": args.samples})
    for path in report["files"]:
        print(path)
    for figure, why in report["skipped"].items():
        print(f"skipped {figure}: {why}")
    return 0


def _reproduce_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("figure", choices=["fig1", "fig10"])
    p.add_argument("--out", default=None, help="default runs/landscape-<toy|lenet>")
    add_flag(p, "data_dir")
    p.add_argument("--save", default=None, metavar="NAME",
                   help="store the runs' landscape numbers as results/NAME.json (what "
                        "docs/findings.md §7 quotes)")
    add_quiet(p)


@command("reproduce", help="a paper figure as one command (fig1: toy, fig10: LeNet)",
         arguments=_reproduce_arguments, resumable=True)
def cmd_reproduce(args: argparse.Namespace) -> int:
    from uebench.landscape import run_lenet, run_toy  # lazy: matplotlib
    from uebench.landscape.experiments import landscape_table  # lazy: matplotlib

    out = args.out or f"runs/landscape-{'toy' if args.figure == 'fig1' else 'lenet'}"
    if args.figure == "fig1":
        result = run_toy(out, progress=not args.quiet)
    else:
        result = run_lenet(out, data_dir=args.data_dir, progress=not args.quiet)
    for path in result["figures"]["files"]:
        print(path)
    print(f"the same paths on the clean training loss: {result['clean_data_figures']}")
    header, rows = landscape_table(out)
    print("\n".join(markdown_lines(header, rows)))
    if args.save:
        values = {"runs": result["runs"]}
        path = save_result(args.save, values, command=f"uebench reproduce {args.figure}",
                           tables={"runs": (header, rows)})
        print(f"stored: {path}")
    return 0
