"""The commands ``uebench bench``, ``uebench check`` and ``uebench validate``
(registered with :func:`uebench.commandline.command`).

    uebench bench GRID.yaml [--executor local|ray] [--workers N] [--devices cuda:0,cuda:1]
                  [--address auto|HOST:PORT] [--store DIR] [--out DIR] [--dry-run] [--quiet]
    uebench check --clean DATASET --protected POISON [POISON ...] [--models resnet18 lenet5:1]
                  [--defenses jpeg cutout] [--seeds N] [--ratios 1,0.8,0.5,0.2]
                  [--no-detect] [--no-clean-part] [--executor ...] [--out DIR] [k=v ...]
    uebench validate VIEW [VIEW ...] [--k 3] [--save NAME]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from uebench.bench.check import run_check
from uebench.bench.check_grid import DEFAULT_RATIOS, parse_ratios
from uebench.bench.check_report import verdict_table
from uebench.bench.detectability import detect_summary
from uebench.bench.executors import get_executor
from uebench.bench.grid import load_grid
from uebench.bench.report import stored_tables
from uebench.bench.run import run_grid
from uebench.bench.validation import effects_table, summary_table, validate
from uebench.bench.validation_figure import DEFAULT_PANELS, plot_effects
from uebench.bench.verdict import MIN_DROP
from uebench.commandline import add_flag, add_quiet, command
from uebench.errors import UebenchError
from uebench.learnability.stat_report import PAIRED_NOTE, grid_lines
from uebench.learnability.statistics import statistic_names
from uebench.utils.stored import save_result

DEFAULT_STORE = "runs/store"
DEFAULT_OUT = "runs/bench"


def _executor_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--executor", default="local", help="local (default) or ray")
    p.add_argument("--workers", type=int, default=1, help="local: worker processes (default 1)")
    p.add_argument("--devices", default=None,
                   help="local: devices dealt to workers in turn, e.g. cuda:0,cuda:1 or cpu")
    p.add_argument("--address", default=None,
                   help="ray: auto (a running cluster) or HOST:PORT; none = start a local Ray")
    p.add_argument("--store", default=DEFAULT_STORE,
                   help=f"content-addressed store of poisons and runs (default {DEFAULT_STORE})")
    add_quiet(p)


def executor_options(args: argparse.Namespace) -> dict[str, Any]:
    """Constructor options of the chosen executor from the common flags."""
    if args.executor == "ray":
        return {"address": args.address}
    devices = [d.strip() for d in args.devices.split(",") if d.strip()] if args.devices else None
    return {"workers": args.workers, "devices": devices}


def _bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("grid", help="grid YAML (experiments/*.yaml); run again to resume, or to "
                                "rewrite the tables from the run directories")
    _executor_args(p)
    p.add_argument("--out", default=DEFAULT_OUT, help=f"grid views (default {DEFAULT_OUT})")
    p.add_argument("--dry-run", action="store_true", help="print the plan and a cost estimate")
    p.add_argument("--save", default=None, metavar="NAME",
                   help="store the grid's tables as results/NAME.json (values, command, commit) "
                        "once every job has finished, for docs to include")
    p.add_argument("--no-control", action="store_true",
                   help="do not add a random-noise control at each poison's budget (the grid "
                        "file's controls: false does the same)")


@command("bench", help="run a grid of poisons x defenses x models x seeds",
         arguments=_bench_arguments, resumable=True)
def cmd_bench(args: argparse.Namespace) -> int:
    grid = load_grid(args.grid, controls=False if args.no_control else None)
    options = executor_options(args)
    result = run_grid(grid, store=args.store, out=args.out, executor=args.executor,
                      dry_run=args.dry_run, progress=not args.quiet, **options)
    if args.dry_run:
        print(result["text"])
        return 0
    view = Path(result["view"])
    text = (view / "tables.md").read_text()
    print(text)
    print(f"tables: {view}/tables.{{md,tex,csv,json}}; runs: {view}/runs -> {args.store}")
    if args.save and not result["failures"]:
        cells = json.loads((view / "tables.json").read_text())
        command = f"uebench bench {args.grid} --store {args.store} --out {args.out}"
        path = save_result(args.save, {"grid": cells.get("grid"), "cells": cells.get("cells")},
                           command=command, tables=stored_tables(text))
        print(f"stored: {path}")
    elif args.save:
        print("not stored: the grid has unfinished jobs (re-run to finish them first)",
              file=sys.stderr)
    return _report_failures(result["failures"])


def _report_failures(failures: dict[str, str]) -> int:
    if not failures:
        return 0
    print(f"{len(failures)} job(s) did not finish (their cells lack those seeds); re-run the "
          "same command to retry them:", file=sys.stderr)
    for key, error in list(failures.items())[:20]:
        print(f"  {key[:16]}: {error}", file=sys.stderr)
    return 1


def _check_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clean", required=True, help="the clean dataset (uebench datasets)")
    p.add_argument("--protected", nargs="+", required=True,
                   help="poison directories made for it (uebench poison generate | import)")
    p.add_argument("--models", nargs="+", default=["resnet18"],
                   help="models, NAME or NAME:WIDTH (default resnet18 at width 0.125)")
    p.add_argument("--defenses", nargs="+", default=["none"],
                   help="defense specs (uebench defenses), e.g. jpeg cutout at:eps=4/255")
    p.add_argument("--seeds", type=int, default=3,
                   help="seeds 0..N-1 (default 3: paired t-intervals against the control)")
    p.add_argument("--ratios", default=",".join(f"{r:g}" for r in DEFAULT_RATIOS),
                   help="shares of each protected set that are protected, each checked against "
                        "its control at the same share (default %(default)s; each share beyond "
                        "the first trains every protected set and control again: 1 = the whole "
                        "set only)")
    add_flag(p, "data_dir")
    add_flag(p, "test_size", help="test subset (default: all)")
    p.add_argument("--config", default=None,
                   help="YAML of RunCfg keys replacing the default training settings")
    p.add_argument("--ci", default="t", choices=["bootstrap", "t"],
                   help="interval of UD, #LP and accuracy over seeds (the paired statistics "
                        "always use Student's t; a bootstrap needs more seeds than a check has)")
    p.add_argument("--no-control", action="store_true",
                   help="do not train random noise at each protected set's budget (no verdict "
                        "can then say more than the accuracy drop)")
    p.add_argument("--no-detect", action="store_true",
                   help="do not run the detectors of uebench detect on each protected set and "
                        "control (the report's table \"Protected vs detectable\")")
    p.add_argument("--no-clean-part", action="store_true",
                   help="do not train the clean part alone at each share below 1 (the report's "
                        "table \"Against the clean part alone\": do the protected images still "
                        "teach the model anything?)")
    p.add_argument("--min-drop", type=float, default=None,
                   help="accuracy drop (fraction) that counts as biting (default 0.10)")
    _executor_args(p)
    p.add_argument("--out", default="runs/check", help="report folder parent (default runs/check)")
    p.add_argument("--save", default=None, metavar="NAME",
                   help="store the verdict table as results/NAME.json (values, command, commit)")
    p.add_argument("overrides", nargs="*", help="key=value, e.g. train.epochs=20")


@command("check", help="how protected is my data? every statistic against a random-noise "
                       "control, verdicts, one HTML report", arguments=_check_arguments,
         resumable=True)
def cmd_check(args: argparse.Namespace) -> int:
    executor = get_executor(args.executor, **executor_options(args))
    result = run_check(
        args.clean, [Path(p) for p in args.protected], store=args.store, out=args.out,
        executor=executor, progress=not args.quiet,
        min_drop=MIN_DROP if args.min_drop is None else args.min_drop,
        models=args.models, defenses=args.defenses, seeds=args.seeds, data_dir=args.data_dir,
        test_size=args.test_size, config_file=args.config, overrides=args.overrides, ci=args.ci,
        controls=not args.no_control, ratios=parse_ratios(args.ratios),
        detect=not args.no_detect, clean_part=not args.no_clean_part)
    print(Path(result["files"]["md"]).read_text())
    if result["detect"] is not None:
        print("protected vs detectable (uebench detect on each whole set):")
        print("\n".join(detect_summary(result["rows"], result["detect"])))
    print(f"report: {result['files']['html']} (self-contained) and {result['files']['md']}")
    if args.save:
        command = "uebench check " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "check"
        path = save_result(args.save, {"rows": result["rows"]}, command=command,
                           tables={"verdicts": verdict_table(result["rows"])})
        print(f"stored: {path}")
    return _report_failures(result["failures"])


def _validate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("views", nargs="+", help="grid views (OUT/<grid>) holding poisons, their "
                                            "controls and a second control draw")
    p.add_argument("--k", type=int, default=3, help="seed-subset size for power and false "
                                                    "positives (default 3, check's default)")
    p.add_argument("--save", default=None, metavar="NAME",
                   help="store the result as results/NAME.json (values, command, commit)")
    p.add_argument("--results", default=None, help="where --save writes (default results/)")
    p.add_argument("--figure", default=None, metavar="PNG",
                   help="also draw every run's paired effect against its control, per statistic, "
                        "across the settings (x = the swept axis where there is one)")
    p.add_argument("--panels", default=",".join(DEFAULT_PANELS), metavar="STATS",
                   help="statistics drawn by --figure, comma-separated (default "
                        f"{','.join(DEFAULT_PANELS)})")


@command("validate", help="which statistic tells poisons from random noise? (the validation "
                          "study over grid views)", arguments=_validate_arguments)
def cmd_validate(args: argparse.Namespace) -> int:
    for view in args.views:
        if not (Path(view) / "index.json").is_file():
            raise UebenchError(f"{view} is not a grid view (no index.json): pass OUT/<grid> of a "
                               "`uebench bench` run")
    if args.k < 2:
        raise UebenchError(f"--k must be >= 2 (a t-interval needs two seeds), got {args.k}")
    panels = [n.strip() for n in args.panels.split(",") if n.strip()]
    unknown = [n for n in panels if n not in statistic_names()]
    if args.figure and (unknown or not panels):
        raise UebenchError(f"--panels: unknown statistic {', '.join(unknown) or '(none given)'}; "
                           f"choose from {', '.join(statistic_names())}")
    result = validate([Path(v) for v in args.views], k=args.k)
    tables = {"summary": summary_table(result)}
    tables.update({f"effects-{s}": effects_table(result, s) for s in result["settings"]})
    print("## Which statistic separates poisons from random noise?\n")
    print("\n".join(grid_lines(tables["summary"])) + "\n")
    print(PAIRED_NOTE + "\n")
    for setting in result["settings"]:
        print(f"### {setting}\n")
        print("\n".join(grid_lines(tables[f"effects-{setting}"])) + "\n")
    if args.save:
        command = "uebench validate " + " ".join(args.views) + f" --k {args.k}"
        path = save_result(args.save, result, command=command, tables=tables,
                           root=Path(args.results) if args.results else None)
        print(f"stored: {path}")
    if args.figure:
        print(f"figure: {plot_effects(result, args.figure, statistics=panels)}")
    return 0
