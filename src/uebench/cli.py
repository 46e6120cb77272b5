"""The ``uebench`` command line; every command mirrors a Python API function.

    uebench datasets | models | attacks [NAME]
    uebench train    --dataset D --model M --epochs E [--train-size N] [--seed S] --out DIR [k=v]
    uebench poison generate --attack A --dataset D [--train-size N] [--preset P] --out DIR [k=v]
    uebench poison import   --format apbench|array|images SRC --dataset D --out DIR
    uebench poison export   POISON_DIR --out DEST
    uebench evaluate --dataset D --model M --poisons DIR [DIR ...] --out OUT [k=v]
    uebench sal      RUN [RUN ...] --tag T [--engine E] [--every K]
    uebench ud       --clean RUN --poisoned RUN [RUN ...] [--out OUT]
    uebench demo     [--out runs/demo]    (the main job)
    uebench bench    GRID.yaml [--executor local|ray] [--workers N] [--dry-run]
    uebench check    --clean DATASET --protected POISON [POISON ...] [--seeds N]
    uebench validate VIEW [VIEW ...] [--save NAME]   (which statistic separates poisons from noise)
    uebench multitask train|poison|evaluate|cross|plot ...   (uebench train --tasks ...)
    uebench download NAME [--data-dir DIR]

Bad input prints one message (what is wrong and how to fix it) and exits with status 2; set
UEBENCH_DEBUG=1 to see the traceback of an unexpected error.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence

from uebench.bench import cli as bench_cli
from uebench.errors import UebenchError
from uebench.multitask import cli as multitask_cli


def _data_args(p: argparse.ArgumentParser, *, dataset_required: bool = True) -> None:
    p.add_argument("--dataset", required=dataset_required, help="dataset name (uebench datasets)")
    p.add_argument("--data-dir", default=None, help="where the dataset files are ($UEBENCH_DATA)")
    p.add_argument("--train-size", type=int, default=None, help="stratified seeded training subset")
    p.add_argument("--test-size", type=int, default=None, help="stratified seeded test subset")
    p.add_argument("--seed", type=int, default=None, help="seed (subsets, data order, init; 0)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 or auto (default)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="model name (uebench models)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--defense", default=None,
                   help="defenses in the order they act: jpeg, jpeg,cutout (uebench defenses)")
    p.add_argument("--config", default=None, help="YAML file with RunCfg keys")
    p.add_argument("overrides", nargs="*", help="key=value, e.g. train.lr=0.05 model.width=0.5")


def _add_listing(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("datasets", help="list datasets and whether their files are present")
    p.add_argument("--data-dir", default=None)
    sub.add_parser("models", help="list models with their layer counts")
    p = sub.add_parser("attacks", help="list attacks, or show one attack's parameters")
    p.add_argument("name", nargs="?", help="an attack: its parameters, presets and paper")
    sub.add_parser("defenses", help="list defenses with their kind, defaults and SAL origin")


def _add_poison(sub: argparse._SubParsersAction) -> None:
    poison = sub.add_parser("poison", help="generate, import or export a poison")
    verbs = poison.add_subparsers(dest="verb", required=True, metavar="VERB")
    p = verbs.add_parser("generate", help="run an attack on a dataset's training (sub)set")
    _data_args(p)
    p.add_argument("--attack", required=True, help="attack name (uebench attacks)")
    p.add_argument("--preset", default="original", help="original (default), apbench, ...")
    p.add_argument("--out", required=True, help="poison directory")
    p.add_argument("params", nargs="*", help="attack parameters key=value, e.g. eps=8/255")
    p = verbs.add_parser("import", help="import a poison made by another tool")
    _data_args(p)
    p.add_argument("--format", required=True, choices=["apbench", "array", "images"])
    p.add_argument("src", help="APBench poison folder, or a .npy/.pt array")
    p.add_argument("--attack", default="imported", help="attack name recorded in the manifest")
    p.add_argument("--norm", default=None, choices=["linf", "l2", "l0"], help="declared norm")
    p.add_argument("--eps", default=None, help="declared budget radius, e.g. 8/255")
    p.add_argument("--positional", action="store_true",
                   help="APBench PNGs named 0..n-1 by position in an exported subset")
    p.add_argument("--force", action="store_true",
                   help="import even if most of the perturbation is clamped to [0, 255]")
    p.add_argument("--out", required=True)
    p = verbs.add_parser("export", help="export a poison to APBench's PNG layout")
    p.add_argument("--format", default="apbench", choices=["apbench"])
    p.add_argument("poison_dir")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", required=True)


def _add_learnability(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="Algorithm 1: clean vs poisoned (and random-noise "
                                        "controls) with SAL -> UD and statistics")
    _data_args(p)
    _run_args(p)
    p.add_argument("--poisons", nargs="+", required=True, help="poison directories")
    p.add_argument("--seeds", default=None,
                   help="several seeds, e.g. 0,1,2: mean ± std and a 95%% interval per run")
    p.add_argument("--beta-from", default="undefended", choices=["undefended", "defended"],
                   help="with --defense: the clean run that sets β and the UD denominator")
    p.add_argument("--sal-engine", default=None, help="SAL engine (default: sal.engine, fast)")
    p.add_argument("--sal-origin", default=None, help="official or exact (engine default)")
    p.add_argument("--no-control", action="store_true",
                   help="do not train the random-noise control at each poison's budget")
    p.add_argument("--recalibrate-bn", action="store_true",
                   help="also measure SAL with BatchNorm statistics re-estimated (ud_bn)")
    p.add_argument("--out", required=True)

    p = sub.add_parser("sal", help="measure SAL after training from a run's per-epoch snapshots")
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
    p.add_argument("--device", default=None)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--option", dest="options", action="append", default=[], metavar="KEY=VALUE",
                   help="an engine option, e.g. --option probe_size=1024 (repeatable)")

    p = sub.add_parser("ud", help="recompute #LP / UD from stored runs")
    p.add_argument("--clean", required=True, help="clean run directory")
    p.add_argument("--poisoned", nargs="+", required=True, help="poisoned run directories")
    p.add_argument("--beta", type=float, default=None, help="use this threshold instead")
    p.add_argument("--decimals", type=int, default=None, help="round SAL like the paper's logs (4)")
    p.add_argument("--sal-tag", default=None, help="use post-hoc SAL (uebench sal --tag TAG)")
    p.add_argument("--out", default=None, help="write results + figures here")


def _add_explain(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("landscape", help="loss landscapes of runs recorded with trajectory.enabled")
    p.add_argument("runs", nargs="+", help="run directories of one architecture (clean first)")
    p.add_argument("--out", required=True)
    p.add_argument("--names", default=None, help="panel titles, comma-separated")
    p.add_argument("--basis", default="pca", help="pca (the paper) or random (filter-normalised)")
    p.add_argument("--grid", type=int, default=21, help="grid points per axis")
    p.add_argument("--data", default="train", help="train (each run's own), clean or test")
    p.add_argument("--samples", type=int, default=1000, help="images the loss is evaluated on")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-interpolation", action="store_true", help="skip the init->final line")
    p = sub.add_parser("plot", help="regenerate every figure a run or evaluation dir supports")
    p.add_argument("directory")
    p.add_argument("--out", default=None, help="default DIRECTORY/figures")
    p.add_argument("--no-compute", action="store_true",
                   help="draw only from stored numbers (no loss-surface evaluation)")
    p.add_argument("--grid", type=int, default=21)
    p.add_argument("--samples", type=int, default=1000)
    p = sub.add_parser("reproduce", help="a paper figure as one command (fig1: toy, fig10: LeNet)")
    p.add_argument("figure", choices=["fig1", "fig10"])
    p.add_argument("--out", default=None, help="default runs/landscape-<toy|lenet>")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--quiet", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="uebench",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_listing(sub)
    p = sub.add_parser("train", help="train one model into a run directory")
    _data_args(p, dataset_required=False)
    _run_args(p)
    p.add_argument("--poison", default=None, help="train on this poison directory")
    p.add_argument("--out", required=True, help="run directory")
    multitask_cli.add_train_arguments(p)
    _add_poison(sub)
    _add_learnability(sub)
    _add_explain(sub)
    bench_cli.add_bench_parser(sub)
    bench_cli.add_check_parser(sub)
    bench_cli.add_validate_parser(sub)
    multitask_cli.add_parsers(sub)
    p = sub.add_parser("demo", help="the main job: EM/OPS/LSP against clean training and "
                                    "random-noise controls")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--train-size", type=int, default=None)
    p.add_argument("--test-size", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", default=None,
                   help="several seeds, e.g. 0,1,2: paired t-intervals against the controls "
                        "(each seed costs about as much as the default run)")
    p.add_argument("--sal-engine", default="fast")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--save", default=None, metavar="NAME",
                   help="store the tables as results/NAME.json (what README quotes)")
    p.add_argument("--quiet", action="store_true")
    p = sub.add_parser("download", help="download a dataset from its official source (checksummed)")
    p.add_argument("name")
    p.add_argument("--data-dir", default=None)
    return parser


def _handler_name(args: argparse.Namespace) -> str:
    verb = getattr(args, "verb", None)
    return "cmd_" + args.command + (f"_{verb}" if verb else "")


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """Parse; ``key=value`` items may stand anywhere, also between or after options.

    argparse gives a ``nargs="*"`` positional only the items before the first option, so later
    ``key=value`` items are collected here into the command's ``overrides`` / ``params``.
    """
    parser = build_parser()
    args, extra = parser.parse_known_args(list(argv))
    target = next((k for k in ("overrides", "params") if hasattr(args, k)), None)
    stray = [e for e in extra if e.startswith("-") or "=" not in e or target is None]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if target is not None:
        setattr(args, target, [*getattr(args, target), *extra])
    return args


# commands that checkpoint their work: re-running the same command resumes it
_RESUMABLE = {"train", "poison generate", "evaluate", "demo", "bench", "sal", "check",
              "reproduce", "multitask"}


def _on_sigterm(signum: int, _frame: object) -> None:
    from uebench.errors import Terminated

    raise Terminated("SIGTERM")


def _install_sigterm() -> object:
    """Turn SIGTERM into :class:`~uebench.errors.Terminated` (a KeyboardInterrupt), so a killed
    command cleans up and says so like Ctrl-C; returns the previous handler (None: not installed,
    e.g. outside the main thread)."""
    import signal

    try:
        return signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # not the main thread (an embedding application)
        return None


def _restore_sigterm(previous: object) -> None:
    import signal

    if previous is not None:
        try:
            signal.signal(signal.SIGTERM, previous)  # type: ignore[arg-type]
        except (ValueError, OSError, TypeError):
            pass


def _remove_if_created_empty(out: object, existed: bool) -> None:
    """A refused or failed command leaves no empty ``--out`` behind: remove the directory (and
    empty folders in it) if this command created it and nothing was written there."""
    if out is None or existed:
        return
    from pathlib import Path

    root = Path(str(out))
    if not root.is_dir() or root.is_symlink():
        return
    try:
        for folder in sorted((p for p in root.rglob("*") if p.is_dir() and not p.is_symlink()),
                             key=lambda p: len(p.parts), reverse=True):
            if not any(folder.iterdir()):
                folder.rmdir()
        if not any(root.iterdir()):
            root.rmdir()
    except OSError:  # best effort: never hide the real error behind a clean-up one
        pass


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    where = " ".join(filter(None, (args.command, getattr(args, "verb", None))))
    # warnings as one plain line each, like errors (no file/line of the code that warned)
    warnings.formatwarning = lambda msg, *_a, **_k: f"uebench {where}: warning: {msg}\n"
    out = getattr(args, "out", None)
    out_existed = out is None or os.path.lexists(str(out))
    previous = _install_sigterm()
    code = 2
    try:
        from uebench import commands

        code = int(getattr(commands, _handler_name(args))(args) or 0)
        return code
    except UebenchError as exc:
        print(f"uebench {where}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        from uebench.errors import Terminated

        resume = ("re-run the same command to resume from the last checkpoint"
                  if args.command in _RESUMABLE or where in _RESUMABLE
                  else "nothing was left half-written; re-run the same command")
        if isinstance(exc, Terminated):
            code = 143  # 128 + SIGTERM, as a shell reports a process the signal ended
            print(f"\nuebench {where}: interrupted ({exc.signal_name}): {resume}", file=sys.stderr)
            return code
        code = 130
        print(f"\ninterrupted: {resume}", file=sys.stderr)
        return code
    except (OSError, ValueError, RuntimeError, MemoryError) as exc:
        # the last line of defence: sources raise UebenchError where they know better
        if os.environ.get("UEBENCH_DEBUG"):
            raise
        from uebench.errors import describe_unexpected

        print(f"uebench {where}: error: {describe_unexpected(exc)}", file=sys.stderr)
        return 2
    finally:
        _restore_sigterm(previous)
        if code != 0:
            _remove_if_created_empty(out, out_existed)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
