"""Argument helpers the core commands share (data and run options, seeds, plain tables)."""

from __future__ import annotations

import argparse
from typing import Any

from uebench.commandline import add_flag, add_quiet, flag_values, int_list
from uebench.config import resolve_run_cfg


def data_args(p: argparse.ArgumentParser, *, dataset_required: bool = True) -> None:
    add_flag(p, "dataset", required=dataset_required)
    for name in ("data_dir", "train_size", "test_size", "seed", "device"):
        add_flag(p, name)
    add_quiet(p)


def run_args(p: argparse.ArgumentParser) -> None:
    for name in ("model", "epochs", "defense", "poison_ratio", "poison_mix"):
        add_flag(p, name)
    p.add_argument("--config", default=None, help="YAML file with RunCfg keys")
    p.add_argument("overrides", nargs="*", help="key=value, e.g. train.lr=0.05 model.width=0.5")


def print_table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    print(fmt.format(*header))
    print(fmt.format(*("-" * w for w in widths)))
    for r in rows:
        print(fmt.format(*r))


def parse_seeds(text: str | None) -> list[int] | None:
    return int_list(text, "--seeds")


def run_cfg_from_args(args: argparse.Namespace) -> Any:
    return resolve_run_cfg(
        config_file=getattr(args, "config", None),
        overrides=getattr(args, "overrides", []) or [],
        **flag_values(args),
    )
