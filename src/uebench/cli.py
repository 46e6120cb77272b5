"""uebench: how far is protected data from true unlearnability? Every command mirrors a
Python API function.

The commands are registered with :func:`uebench.commandline.command` beside their packages
(:mod:`uebench.commands`, :mod:`uebench.bench.cli`, :mod:`uebench.multitask.cli`); this module
imports them, builds the parser from the registry and is the one place that turns errors into
messages and exit statuses (docs/faults.md). ``uebench --help`` lists every command.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence

from uebench import commands  # noqa: F401
from uebench.bench import cli as _bench_commands  # noqa: F401
from uebench.commandline import COMMAND_GROUPS, COMMANDS
from uebench.detect import cli as _detect_commands  # noqa: F401

# the modules whose @command handlers make up the command line (registration on import)
from uebench.errors import Terminated, UebenchError, describe_unexpected
from uebench.multitask import cli as _multitask_commands  # noqa: F401

_EPILOG = """\
Run `uebench COMMAND --help` for a command's options; `uebench demo` is the main job.
Bad input prints one message (what is wrong and how to fix it) and exits with status 2; set
UEBENCH_DEBUG=1 to see the traceback of an unexpected error."""


def build_parser() -> argparse.ArgumentParser:
    """The parser of every registered command (:data:`uebench.commandline.COMMANDS`)."""
    parser = argparse.ArgumentParser(
        prog="uebench", description=__doc__.split("\n\n")[0], epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    verbs: dict[str, argparse._SubParsersAction] = {}
    for name in COMMANDS.names():
        meta = COMMANDS.meta(name)
        group, _, verb = name.partition(" ")
        if verb:
            if group not in verbs:
                help_ = COMMAND_GROUPS.meta(group)["help"]
                verbs[group] = sub.add_parser(group, help=help_, description=help_).add_subparsers(
                    dest="verb", required=True, metavar="VERB")
            p = verbs[group].add_parser(verb, help=meta["help"], description=meta["help"])
        else:
            p = sub.add_parser(name, help=meta["help"], description=meta["help"])
        if meta["arguments"] is not None:
            meta["arguments"](p)
        p.set_defaults(command_name=name)
    return parser


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


def _on_sigterm(signum: int, _frame: object) -> None:
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


def dispatch(args: argparse.Namespace) -> int:
    """Run the handler of the command ``args`` were parsed for; its exit status."""
    return int(COMMANDS.get(args.command_name)(args) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    where = args.command_name
    # warnings as one plain line each, like errors (no file/line of the code that warned)
    warnings.formatwarning = lambda msg, *_a, **_k: f"uebench {where}: warning: {msg}\n"
    out = getattr(args, "out", None)
    out_existed = out is None or os.path.lexists(str(out))
    previous = _install_sigterm()
    code = 2
    try:
        code = dispatch(args)
        return code
    except UebenchError as exc:
        print(f"uebench {where}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        resume = ("re-run the same command to resume from the last checkpoint"
                  if COMMANDS.meta(where)["resumable"]
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

        print(f"uebench {where}: error: {describe_unexpected(exc)}", file=sys.stderr)
        return 2
    finally:
        _restore_sigterm(previous)
        if code != 0:
            _remove_if_created_empty(out, out_existed)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
