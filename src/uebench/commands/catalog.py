"""What uebench has: ``datasets``, ``models``, ``defenses``, ``attacks`` and ``download``.

Each command registers its arguments and its handler together
(:func:`uebench.commandline.command`) and is a thin wrapper around the Python API."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from uebench.attacks import ATTACKS, attack_info
from uebench.commandline import add_flag, command
from uebench.commands.common import print_table
from uebench.data import DATASETS
from uebench.data.download import download
from uebench.defenses import DEFENSES, defense_info
from uebench.errors import DataNotFoundError, UebenchError
from uebench.models import MODELS, get_model, layer_names
from uebench.multitask import MULTITASK_DATASETS, load_multitask


def _load_status(load: Any) -> tuple[Any, str, str | None]:
    """(what ``load()`` returned or None, "missing" / "... (see below)" / "", the problem)."""

    try:
        return load(), "", None
    except DataNotFoundError:
        return None, "missing", None
    except UebenchError as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        kind = "incomplete or corrupt" if any(
            w in text.lower() for w in ("truncat", "corrupt", "not readable", "cannot read",
                                        "not a readable", "too short", "download it again")
        ) else "error"
        return None, f"{kind} (see below)", text


def _dataset_status(name: str, root: Path | None) -> tuple[str, str | None]:
    """("yes (...)" / "missing" / "incomplete ..." / "error ...", the problem in full or None).

    A dataset with known sizes has both splits read and counted, so a truncated or partial copy
    says "incomplete" instead of "yes"; others (ImageNet-100: minutes to decode) read only the
    test split.
    """

    sizes = DATASETS.meta(name).get("sizes")
    fn = DATASETS.get(name)
    splits, status, problem = _load_status(
        lambda: (fn(root, False), fn(root, True) if sizes else None))
    if splits is None:
        return status, problem
    test, train = splits
    if sizes:
        short = [f"{what} {len(split)} of {want} images"
                 for what, split, want in (("train", train, sizes[0]), ("test", test, sizes[1]))
                 if len(split) < want]
        if short:
            where = test.meta.get("source", name)
            return ("incomplete (see below)",
                    f"{'; '.join(short)} in {where}: the copy is incomplete; get the files again "
                    f"(uebench download {name}) or pass --data-dir to a complete copy")
    return f"yes ({'x'.join(map(str, test.image_shape))}, {test.num_classes} classes)", None


def _multitask_status(name: str, root: Path | None) -> tuple[str, str | None]:
    """As :func:`_dataset_status` for a multi-task dataset, from a small load of its test split
    (the registered ``probe`` options) that still reads its files."""

    meta = MULTITASK_DATASETS.meta(name)
    split = "test" if "test" in meta["splits"] else meta["splits"][-1]
    data, status, problem = _load_status(
        lambda: load_multitask(name, split, data_dir=root, **meta["probe"]))
    if data is None:
        return status, problem
    return f"yes ({'x'.join(map(str, data.image_shape))}, tasks {', '.join(data.task_names)})", None


def _datasets_arguments(p: argparse.ArgumentParser) -> None:
    add_flag(p, "data_dir")


@command("datasets", help="list datasets (single- and multi-task) and whether their files are "
                          "present", arguments=_datasets_arguments)
def cmd_datasets(args: argparse.Namespace) -> int:
    rows, problems = [], []
    root = Path(args.data_dir) if args.data_dir else None
    listed = [(DATASETS, _dataset_status, "single-task"),
              (MULTITASK_DATASETS, _multitask_status, "multi-task")]
    for registry, status_of, kind in listed:
        for name in registry.names():
            status, problem = status_of(name, root)
            if problem:
                problems.append(f"{name}: {problem}")
            rows.append([name, kind, status, registry.meta(name).get("description", "")])
    print_table(rows, ["dataset", "kind", "available", "description"])
    print("\nmulti-task datasets train with `uebench train --tasks TASKS --dataset NAME` and "
          "`uebench multitask ...` (docs/multitask.md)")
    if problems:
        print()
        for line in problems:
            print(line)
    return 0


@command("models", help="list models with their layer counts")
def cmd_models(args: argparse.Namespace) -> int:
    rows = []
    for name in MODELS.names():
        try:
            m = get_model(name, in_channels=3, image_size=32, num_classes=10)
            n_params = sum(p.numel() for p in m.parameters())
            rows.append(
                [
                    name,
                    str(len(layer_names(m))),
                    f"{n_params:,}",
                    MODELS.meta(name).get("description", ""),
                ]
            )
        except (ValueError, RuntimeError) as exc:  # a model that cannot take 3x32x32
            rows.append([name, "-", "-", f"{MODELS.meta(name).get('description', '')} ({exc})"])
    print_table(rows, ["model", "layers", "params (3x32x32, 10 cls)", "description"])
    return 0


def _budget_text(info: Any) -> str:
    eps = info.defaults.get(info.eps_param) if info.eps_param else None
    norm = info.norm_for(info.defaults)
    budget = "none" if norm is None else norm
    if norm == "l0":
        return "l0 (pixels)"
    if eps is not None:
        return budget + f" {eps:.4g}" + (f" ({eps * 255:.3g}/255)" if norm == "linf" else "")
    if info.eps_for_shape is not None:
        return budget + f" {info.eps_for_shape((3, 32, 32)):.4g} @3x32x32 (size-dependent)"
    return budget


def _attack_detail(name: str) -> int:
    info = attack_info(name)
    print(f"{name}: {info.description}")
    print(f"paper: {info.paper or '-'}")
    print(f"budget (default): {_budget_text(info)}; surrogate model: "
          f"{'yes' if info.surrogate else 'no'}")
    doc = (ATTACKS.get(name).__doc__ or "").strip().splitlines()
    if doc:
        print(f"summary: {doc[0]}")
    print("\nparameters (original preset = the defaults; override with key=value):")
    rows = []
    for key, default in info.defaults.items():
        hint = info.hints.get(key)
        type_name = getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
        rows.append([key, type_name, repr(default)])
    print_table(rows, ["parameter", "type", "default"])
    print("\npresets:")
    for preset, params in info.presets.items():
        text = ", ".join(f"{k}={v!r}" for k, v in params.items()) or "(the defaults)"
        print(f"  {preset}: {text}")
    print(f"\nexample: uebench poison generate --attack {name} --dataset fashion-mnist "
          f"--train-size 1000 --out poisons/{name}")
    return 0


@command("defenses", help="list defenses with their kind, defaults and SAL origin")
def cmd_defenses(args: argparse.Namespace) -> int:
    rows = []
    for name in DEFENSES.names():
        info = defense_info(name)
        defaults = ", ".join(f"{k}={v!r}" for k, v in info.defaults.items()) or "-"
        rows.append([name, info.kind, defaults, info.official_origin, info.description])
    print_table(rows, ["defense", "kind", "defaults", "official SAL origin", "description"])
    print("\ncombine in the order they act: --defense jpeg,cutout; parameters: "
          "--defense at:eps=4/255:steps=5")
    return 0


def _attacks_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="an attack: its parameters, presets and paper")


@command("attacks", help="list attacks, or show one attack's parameters",
         arguments=_attacks_arguments)
def cmd_attacks(args: argparse.Namespace) -> int:
    if args.name:
        return _attack_detail(args.name)
    rows = []
    for name in ATTACKS.names():
        info = attack_info(name)
        rows.append(
            [
                name,
                _budget_text(info),
                ", ".join(info.presets),
                "yes" if info.surrogate else "no",
                info.description,
            ]
        )
    print_table(rows, ["attack", "budget (default)", "presets", "surrogate", "description"])
    return 0


def _download_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name")
    add_flag(p, "data_dir")


@command("download", help="download a dataset from its official source (checksummed)",
         arguments=_download_arguments)
def cmd_download(args: argparse.Namespace) -> int:
    path = download(args.name, Path(args.data_dir) if args.data_dir else None)
    print(f"downloaded {args.name} to {path}")
    return 0
