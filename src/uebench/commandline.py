"""How a ``uebench`` subcommand is declared: its options and its handler, registered together.

A command is one decorated handler, in the module of the package it belongs to::

    def _train_arguments(p: argparse.ArgumentParser) -> None:
        add_flag(p, "dataset")  # a run setting, declared in uebench.config.RUN_FLAGS
        p.add_argument("--out", required=True, help="run directory")

    @command("train", help="train one model into a run directory", arguments=_train_arguments,
             resumable=True)
    def cmd_train(args: argparse.Namespace) -> int:
        cfg = resolve_run_cfg(config_file=args.config, overrides=args.overrides,
                              **flag_values(args))
        ...

A command with verbs is named with a space (``"poison generate"``); its group is declared once
with :func:`command_group`. :mod:`uebench.cli` imports the modules that hold commands and builds
the parser from :data:`COMMANDS`, so ``uebench --help`` lists exactly what is registered.

Run settings that have a flag (``--dataset``, ``--epochs``, ...) are declared once, with their
config key, type and help, in :data:`uebench.config.RUN_FLAGS` (multi-task:
:data:`uebench.multitask.config.MULTITASK_FLAGS`): the Python API (``resolve_run_cfg(epochs=3)``)
and the grid axes need that mapping without the command line loaded. :func:`add_flag` makes the
option from that declaration and :func:`flag_values` reads the given values back for
``resolve_run_cfg(**flags)``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import Any

from uebench.config import RUN_FLAGS, Flag
from uebench.errors import UebenchError
from uebench.registry import Registry

Handler = Callable[[argparse.Namespace], "int | None"]
Arguments = Callable[[argparse.ArgumentParser], None]

# name ("train", "poison generate") -> handler; meta: help, arguments, resumable
COMMANDS: Registry[Handler] = Registry("command")
# group name ("poison") -> its help; the verbs are the COMMANDS named "<group> <verb>"
COMMAND_GROUPS: Registry[str] = Registry("command group")


def command(name: str, *, help: str, arguments: Arguments | None = None,
            resumable: bool = False) -> Callable[[Handler], Handler]:
    """Register ``handler(args) -> exit status`` as ``uebench NAME``.

    Args:
        name: the command, or ``"group verb"`` for a verb of a :func:`command_group`.
        help: one line for ``uebench --help`` (and the command's own ``--help``).
        arguments: adds the command's options and positionals to its parser.
        resumable: the command checkpoints its work, so an interrupted one is resumed by
            running it again (what the interruption message tells the user).
    """
    if len(name.split()) > 2:
        raise ValueError(f"command '{name}': at most one verb below a command")
    return COMMANDS.register(name, help=help, arguments=arguments, resumable=resumable)


def command_group(name: str, *, help: str) -> None:
    """Declare ``uebench NAME VERB ...``; its verbs register as ``@command("NAME VERB")``."""
    COMMAND_GROUPS.register(name, help=help)(name)


def add_flag(parser: argparse.ArgumentParser, name: str, *,
             table: Mapping[str, Flag] = RUN_FLAGS, **overrides: Any) -> argparse.Action:
    """Add the option ``--name`` (underscores as dashes) of the run setting ``table[name]``.

    Its type and help come from the declaration; ``overrides`` are argparse keywords for this
    command only (``required=True``, a ``default``, a more specific ``help``). Unless overridden
    the default is ``None``: "not given", so the layers below (YAML file, recipe) decide.
    """
    flag = table[name]
    if flag.help is None:
        raise ValueError(f"run setting '{name}' has no command-line option (no help declared)")
    kwargs: dict[str, Any] = {"default": None, "help": flag.help}
    if flag.type is not str:
        kwargs["type"] = flag.type
    kwargs.update(overrides)
    return parser.add_argument("--" + name.replace("_", "-"), **kwargs)


def flag_values(args: argparse.Namespace, table: Mapping[str, Flag] = RUN_FLAGS
                ) -> dict[str, Any]:
    """The run settings of ``table`` present in ``args`` (``None`` = not given), as keywords of
    ``resolve_run_cfg`` / ``resolve_multitask_cfg``."""
    return {name: getattr(args, name) for name in table if hasattr(args, name)}


def int_list(text: str | None, flag: str) -> list[int] | None:
    """A comma-separated list of integers given to ``flag`` (``None`` when not given); a value
    that is not one gets one line naming the flag."""
    if not text:
        return None
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UebenchError(f"{flag} takes comma-separated integers, e.g. {flag} 0,1,2; "
                           f"got {text!r}") from None


def add_quiet(parser: argparse.ArgumentParser) -> None:
    """``--quiet``: no progress bars (every long-running command has it)."""
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
