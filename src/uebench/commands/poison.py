"""The ``poison`` group: ``generate``, ``import`` and ``export``.

Each command registers its arguments and its handler together
(:func:`uebench.commandline.command`) and is a thin wrapper around the Python API."""

from __future__ import annotations

import argparse
from pathlib import Path

from uebench.attacks.generate import generate_poison
from uebench.commandline import add_flag, command, command_group
from uebench.commands.common import data_args
from uebench.config import parse_number, parse_params
from uebench.poisons import export_poison, import_poison

command_group("poison", help="generate, import or export a poison")


def _poison_generate_arguments(p: argparse.ArgumentParser) -> None:
    data_args(p)
    p.add_argument("--attack", required=True, help="attack name (uebench attacks)")
    p.add_argument("--preset", default="original", help="original (default), apbench, ...")
    p.add_argument("--out", required=True, help="poison directory")
    p.add_argument("params", nargs="*", help="attack parameters key=value, e.g. eps=8/255")


@command("poison generate", help="run an attack on a dataset's training (sub)set",
         arguments=_poison_generate_arguments, resumable=True)
def cmd_poison_generate(args: argparse.Namespace) -> int:
    manifest = generate_poison(
        args.attack,
        dataset=args.dataset,
        data_dir=args.data_dir,
        train_size=args.train_size,
        seed=args.seed or 0,
        preset=args.preset,
        params=parse_params(args.params),
        out=Path(args.out),
        device=args.device,
        progress=not args.quiet,
    )
    m = manifest["measured"]
    b = manifest["budget"]
    print(
        f"poison written to {args.out}: {manifest['attack']} ({manifest['preset']}), "
        f"n={manifest['n']}, "
        f"budget {b['norm']} {b['eps']}, measured linf {m['linf_max']:.4f} l2 {m['l2_max']:.4f} "
        f"l0 {m['l0_max']:.0f}, {manifest['generation_seconds']:.1f}s"
    )
    if manifest.get("diagnostics"):
        print("diagnostics: " + ", ".join(f"{k} {v}" for k, v in manifest["diagnostics"].items()))
    return 0


def _poison_import_arguments(p: argparse.ArgumentParser) -> None:
    data_args(p)
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


@command("poison import", help="import a poison made by another tool",
         arguments=_poison_import_arguments)
def cmd_poison_import(args: argparse.Namespace) -> int:
    eps = None
    if args.eps is not None:
        eps = parse_number("--eps", args.eps)
    manifest = import_poison(
        args.src,
        fmt=args.format,
        dataset=args.dataset,
        data_dir=args.data_dir,
        train_size=args.train_size,
        seed=args.seed or 0,
        attack=args.attack,
        norm=args.norm,
        eps=eps,
        out=Path(args.out),
        positional=args.positional,
        force=args.force,
    )
    m = manifest["measured"]
    print(f"imported {manifest['n']} poisoned samples into {args.out}: measured linf "
          f"{m['linf_max']:.4f} ({m['linf_max'] * 255:.1f}/255), l2 {m['l2_max']:.4f}, l0 "
          f"{m['l0_max']:.0f} pixels")
    if args.norm is None:
        print("no budget declared (--norm/--eps), so none is enforced: the numbers above are "
              "what the poison uses; declare its budget to have it checked")
    return 0


def _poison_export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", default="apbench", choices=["apbench"])
    p.add_argument("poison_dir")
    add_flag(p, "data_dir")
    p.add_argument("--out", required=True)


@command("poison export", help="export a poison to APBench's PNG layout",
         arguments=_poison_export_arguments)
def cmd_poison_export(args: argparse.Namespace) -> int:
    dest = export_poison(Path(args.poison_dir), Path(args.out), data_dir=args.data_dir)
    print(f"exported to {dest} (APBench layout: data/<train_index>.png)")
    return 0
