"""The multi-task commands (registered with :func:`uebench.commandline.command`).

    uebench train --tasks scene,segment,depth,keypoints [--dataset scenes] --out RUN [k=v ...]
    uebench multitask train    [--tasks T,...] --out RUN [k=v ...]          (the same)
    uebench multitask poison   --attack em --param tasks=scene --out DIR [k=v ...]
    uebench multitask evaluate --poisons DIR [DIR ...] --out OUT [k=v ...]  (per-task UD, Fig. 4)
    uebench multitask cross    [--poisons DIR ...] [--generate em:scene em:all ops ...]
                               [--targets T,...] [--seeds 0,1,2] --out OUT [k=v ...]   (Fig. 8)
    uebench multitask plot     DIR [--out FIGURES]

Run settings resolve as for single-task runs (:func:`~uebench.multitask.config.
resolve_multitask_cfg`): dataset recipe < ``--config`` YAML < flags < ``key=value``
(``data.options.image_size=32``, ``model.backbone=resnet10``, ``weights.depth=2``, ...).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from uebench.commandline import (
    add_flag,
    add_quiet,
    command,
    command_group,
    flag_values,
    int_list,
)
from uebench.config import parse_params  # key=value items -> {dotted key: YAML value}
from uebench.errors import UebenchError
from uebench.multitask.config import MULTITASK_FLAGS, resolve_multitask_cfg
from uebench.multitask.cross import cross_task_matrix, generate_poisons
from uebench.multitask.evaluate import evaluate_poisons
from uebench.multitask.generate import generate_for_run
from uebench.multitask.run import train_multitask_run
from uebench.train.run import is_complete

command_group("multitask", help="multi-task runs, poisons, per-task UD, cross-task")


def _common(p: argparse.ArgumentParser) -> None:
    for name in ("dataset", "data_dir", "train_size", "test_size", "seed", "device", "model",
                 "epochs"):
        add_flag(p, name, table=MULTITASK_FLAGS)
    p.add_argument("--config", default=None, help="YAML file with MultiTaskRunCfg keys")
    add_quiet(p)
    p.add_argument("overrides", nargs="*", help="key=value, e.g. data.options.image_size=32")


def _take_overrides(args: argparse.Namespace, *lists: str) -> None:
    """Move ``key=value`` items that a list option (``--poisons A B``) swallowed to the
    overrides, so ``key=value`` may stand anywhere on the command line."""
    for name in lists:
        items = getattr(args, name, None) or []
        setattr(args, name, [i for i in items if "=" not in i])
        args.overrides = [*(getattr(args, "overrides", None) or []),
                          *(i for i in items if "=" in i)]


def cfg_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~uebench.multitask.config.MultiTaskRunCfg` of a command's arguments."""
    _take_overrides(args, "poisons", "generate")
    flags = flag_values(args, MULTITASK_FLAGS)
    if flags.get("tasks") == "all":  # every task of the dataset, as when --tasks is not given
        flags["tasks"] = None
    return resolve_multitask_cfg(
        config_file=getattr(args, "config", None),
        overrides=getattr(args, "overrides", []) or [],
        defense=getattr(args, "defense", None), poison_ratio=getattr(args, "poison_ratio", None),
        poison_mix=getattr(args, "poison_mix", None), **flags)


def _train_arguments(p: argparse.ArgumentParser) -> None:
    _common(p)
    add_flag(p, "tasks", table=MULTITASK_FLAGS)
    add_flag(p, "poison", table=MULTITASK_FLAGS)
    p.add_argument("--out", required=True)


@command("multitask train", help="train a multi-task model into a run directory",
         arguments=_train_arguments, resumable=True)
def cmd_multitask_train(args: argparse.Namespace) -> int:
    """``uebench multitask train`` and ``uebench train --tasks``."""
    cfg = cfg_from_args(args)
    out = Path(args.out)
    reused = is_complete(out)
    summary = train_multitask_run(cfg, out, progress=not args.quiet)
    metrics = "  ".join(f"{k.removeprefix('test/')}={v:.4f}" for k, v in summary.items()
                        if k.startswith("test/") and not k.endswith("/loss") and v is not None)
    print(f"{'reused complete run' if reused else 'done'}: {out}  {metrics}  "
          f"epochs={summary['epochs']}  seconds={summary['seconds']:.1f}")
    return 0


def _poison_arguments(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--attack", required=True, help="em (multi-task), or ops, ar, lsp, random ...")
    p.add_argument("--preset", default="original")
    p.add_argument("--label-task", default=None, help="classification task giving the labels")
    p.add_argument("--param", dest="params_", action="append", default=[], metavar="KEY=VALUE",
                   help="attack parameter, e.g. --param tasks=scene,depth --param steps=10")
    p.add_argument("--out", required=True)


@command("multitask poison", help="poison a multi-task training set (multi-task EM, or a "
                                  "classification attack on the scene labels)",
         arguments=_poison_arguments, resumable=True)
def cmd_multitask_poison(args: argparse.Namespace) -> int:
    manifest = generate_for_run(cfg_from_args(args), args.attack, Path(args.out),
                                params=parse_params(args.params_), preset=args.preset,
                                label_task=args.label_task, progress=not args.quiet)
    m = manifest["measured"]
    tasks = manifest["params"].get("tasks", "")
    print(f"poison written to {args.out}: {manifest['attack']} {tasks} n={manifest['n']}, "
          f"labels from '{manifest['multitask']['label_task']}', measured "
          f"linf {m['linf_max']:.4f} l2 {m['l2_max']:.4f}, {manifest['generation_seconds']:.1f}s")
    return 0


def _evaluate_arguments(p: argparse.ArgumentParser) -> None:
    _common(p)
    add_flag(p, "tasks", table=MULTITASK_FLAGS)
    p.add_argument("--poisons", nargs="+", required=True)
    add_flag(p, "sal_engine", table=MULTITASK_FLAGS)
    p.add_argument("--out", required=True)


@command("multitask evaluate", help="clean vs poisoned with per-task SAL: UD per task",
         arguments=_evaluate_arguments, resumable=True)
def cmd_multitask_evaluate(args: argparse.Namespace) -> int:
    cfg = cfg_from_args(args)
    result = evaluate_poisons(cfg, [Path(p) for p in args.poisons],
                              out=Path(args.out), progress=not args.quiet)
    print((Path(args.out) / "results.md").read_text())
    print("figures: " + ", ".join(result.get("files", [])))
    return 0


def _cross_arguments(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--poisons", nargs="*", default=[], help="existing poison directories")
    p.add_argument("--generate", nargs="*", default=[], metavar="SPEC",
                   help="poisons to make into OUT/poisons: em:scene, em:segment+depth, em:all, "
                        "ops, random ...")
    p.add_argument("--poison-param", dest="poison_params", action="append", default=[],
                   metavar="KEY=VALUE", help="parameter for every generated poison that has it")
    p.add_argument("--targets", default=None, help="tasks to train for (default: all)")
    p.add_argument("--seeds", default=None,
                   help="several training seeds, e.g. 0,1,2 (same images and poisons): "
                        "mean ± std of every difference")
    p.add_argument("--out", required=True)


@command("multitask cross", help="cross-task matrix: poison for task A, model for task B",
         arguments=_cross_arguments, resumable=True)
def cmd_multitask_cross(args: argparse.Namespace) -> int:
    cfg = cfg_from_args(args)
    poisons = [Path(p) for p in args.poisons]
    if args.generate:
        poisons += generate_poisons(cfg, args.generate, Path(args.out) / "poisons",
                                    params=parse_params(args.poison_params),
                                    progress=not args.quiet)
    if not poisons:
        raise UebenchError("give --poisons DIR ... and/or --generate SPEC ...")
    targets = [t for t in args.targets.split(",") if t] if args.targets else None
    seeds = int_list(args.seeds, "--seeds")
    table = cross_task_matrix(cfg, poisons, out=Path(args.out), targets=targets, seeds=seeds,
                              progress=not args.quiet)
    print((Path(args.out) / "results.md").read_text())
    print("figures: " + ", ".join(table.get("files", [])))
    return 0


def _plot_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("directory")
    p.add_argument("--out", default=None)


@command("multitask plot", help="figures of a multi-task run, evaluation or matrix",
         arguments=_plot_arguments)
def cmd_multitask_plot(args: argparse.Namespace) -> int:
    from uebench.multitask.plots import plot_multitask  # lazy: matplotlib (figures)

    report = plot_multitask(Path(args.directory), out=Path(args.out) if args.out else None)
    for path in report["files"]:
        print(path)
    for figure, why in report["skipped"].items():
        print(f"skipped {figure}: {why}")
    return 0
