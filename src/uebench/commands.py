"""Implementations of the CLI commands (each a thin wrapper around the Python API)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from uebench.config import parse_params
from uebench.errors import UebenchError


def _print_table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    print(fmt.format(*header))
    print(fmt.format(*("-" * w for w in widths)))
    for r in rows:
        print(fmt.format(*r))


def _dataset_status(name: str, root: Path | None) -> tuple[str, str | None]:
    """("yes (...)" / "missing" / "incomplete ..." / "error ...", the problem in full or None).

    A dataset with known sizes has both splits read and counted, so a truncated or partial copy
    says "incomplete" instead of "yes"; others (ImageNet-100: minutes to decode) read only the
    test split.
    """
    from uebench.data import DATASETS
    from uebench.errors import DataNotFoundError

    sizes = DATASETS.meta(name).get("sizes")
    fn = DATASETS.get(name)
    try:
        test = fn(root, False)
        train = fn(root, True) if sizes else None
    except DataNotFoundError:
        return "missing", None
    except UebenchError as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        kind = "incomplete or corrupt" if any(
            w in text.lower() for w in ("truncat", "corrupt", "not readable", "cannot read",
                                        "not a readable", "too short", "download it again")
        ) else "error"
        return f"{kind} (see below)", text
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


def cmd_datasets(args: argparse.Namespace) -> int:
    from uebench.data import DATASETS

    rows, problems = [], []
    root = Path(args.data_dir) if args.data_dir else None
    for name in DATASETS.names():
        status, problem = _dataset_status(name, root)
        if problem:
            problems.append(f"{name}: {problem}")
        rows.append([name, status, DATASETS.meta(name).get("description", "")])
    _print_table(rows, ["dataset", "available", "description"])
    if problems:
        print()
        for line in problems:
            print(line)
    return 0


def cmd_models(args: argparse.Namespace) -> int:

    from uebench.models import MODELS, get_model, layer_names

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
    _print_table(rows, ["model", "layers", "params (3x32x32, 10 cls)", "description"])
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
    from uebench.attacks import ATTACKS, attack_info

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
    _print_table(rows, ["parameter", "type", "default"])
    print("\npresets:")
    for preset, params in info.presets.items():
        text = ", ".join(f"{k}={v!r}" for k, v in params.items()) or "(the defaults)"
        print(f"  {preset}: {text}")
    print(f"\nexample: uebench poison generate --attack {name} --dataset fashion-mnist "
          f"--train-size 1000 --out poisons/{name}")
    return 0


def cmd_defenses(args: argparse.Namespace) -> int:
    from uebench.defenses import DEFENSES, defense_info

    rows = []
    for name in DEFENSES.names():
        info = defense_info(name)
        defaults = ", ".join(f"{k}={v!r}" for k, v in info.defaults.items()) or "-"
        rows.append([name, info.kind, defaults, info.official_origin, info.description])
    _print_table(rows, ["defense", "kind", "defaults", "official SAL origin", "description"])
    print("\ncombine in the order they act: --defense jpeg,cutout; parameters: "
          "--defense at:eps=4/255:steps=5")
    return 0


def cmd_attacks(args: argparse.Namespace) -> int:
    from uebench.attacks import ATTACKS, attack_info

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
    _print_table(rows, ["attack", "budget (default)", "presets", "surrogate", "description"])
    return 0


def _run_cfg_from_args(args: argparse.Namespace, **extra: Any) -> Any:
    from uebench.config import resolve_run_cfg

    flags = dict(
        dataset=getattr(args, "dataset", None),
        data_dir=getattr(args, "data_dir", None),
        train_size=getattr(args, "train_size", None),
        test_size=getattr(args, "test_size", None),
        model=getattr(args, "model", None),
        epochs=getattr(args, "epochs", None),
        seed=getattr(args, "seed", None),
        device=getattr(args, "device", None),
        poison=getattr(args, "poison", None),
        sal_engine=getattr(args, "sal_engine", None),
        sal_origin=getattr(args, "sal_origin", None),
        defense=getattr(args, "defense", None),
    )
    flags.update(extra)
    return resolve_run_cfg(
        config_file=getattr(args, "config", None),
        overrides=getattr(args, "overrides", []) or [],
        **flags,
    )


def cmd_train(args: argparse.Namespace) -> int:
    from uebench.train.run import is_complete, train_run

    if getattr(args, "tasks", None):
        return cmd_train_tasks(args)
    cfg = _run_cfg_from_args(args)
    out = Path(args.out)
    reused = is_complete(out)
    summary = train_run(cfg, out, progress=not args.quiet)
    state = "reused complete run" if reused else "done"
    print(
        f"{state}: {out}  test_acc={summary['test_acc']:.4f}  epochs={summary['epochs']}  "
        f"seconds={summary['seconds']:.1f}"
    )
    return 0


def cmd_poison_generate(args: argparse.Namespace) -> int:
    from uebench.attacks.generate import generate_poison

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


def cmd_poison_import(args: argparse.Namespace) -> int:
    from uebench.poisons import import_poison

    eps = None
    if args.eps is not None:
        from uebench.config import parse_number

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


def cmd_poison_export(args: argparse.Namespace) -> int:
    from uebench.poisons import export_poison

    dest = export_poison(Path(args.poison_dir), Path(args.out), data_dir=args.data_dir)
    print(f"exported to {dest} (APBench layout: data/<train_index>.png)")
    return 0


def _seeds(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UebenchError(f"--seeds must be comma-separated integers, got {text!r}") from None


def cmd_evaluate(args: argparse.Namespace) -> int:
    from uebench.evaluation import evaluate

    cfg = _run_cfg_from_args(args)  # --sal-engine/--sal-origin are flags: key=value wins
    seeds = _seeds(args.seeds)
    evaluate(cfg, [Path(p) for p in args.poisons], out=Path(args.out), seeds=seeds,
             beta_from=args.beta_from, controls=not args.no_control,
             recalibrate_bn=args.recalibrate_bn, progress=not args.quiet)
    print((Path(args.out) / "results.md").read_text())
    print(
        f"figures: {Path(args.out) / 'sal_heatmaps.png'}, {Path(args.out) / 'learnable_counts.png'}"
    )
    return 0


def cmd_ud(args: argparse.Namespace) -> int:
    from uebench.learnability.distance import checked_beta
    from uebench.learnability.report import recompute

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


def cmd_sal(args: argparse.Namespace) -> int:
    from uebench.learnability.posthoc import measure_run

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


def cmd_download(args: argparse.Namespace) -> int:
    from uebench.data.download import download

    path = download(args.name, Path(args.data_dir) if args.data_dir else None)
    print(f"downloaded {args.name} to {path}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import time

    from uebench.demo import accuracy_costs, run_demo

    t0 = time.perf_counter()
    sizes = {k: v for k, v in (("train_size", args.train_size), ("test_size", args.test_size),
                               ("epochs", args.epochs)) if v is not None}
    result = run_demo(args.out, **sizes, seed=args.seed, seeds=_seeds(args.seeds),
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
        from uebench.demo import demo_tables
        from uebench.utils.stored import save_result

        command = "uebench demo " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
            if k in ("train_size", "test_size", "epochs", "seeds") and v is not None)
        values = {k: v for k, v in result.items() if k != "files"}
        values["seconds"] = seconds
        path = save_result(args.save, values, command=command.strip(),
                           tables=demo_tables(result))
        print(f"stored: {path}")
    return 0


def cmd_landscape(args: argparse.Namespace) -> int:
    from uebench.landscape import landscape

    names = [n.strip() for n in args.names.split(",")] if args.names else None
    result = landscape(args.runs, Path(args.out), names=names, basis=args.basis, grid=args.grid,
                       data=args.data, n_samples=args.samples, seed=args.seed,
                       interpolation_points=0 if args.no_interpolation else 31)
    for path in result.get("files", []):
        print(path)
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from uebench.landscape import plot_all
    from uebench.multitask.plots import plot_multitask, supports

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


def cmd_reproduce(args: argparse.Namespace) -> int:
    from uebench.landscape import run_lenet, run_toy

    if args.figure == "fig1":
        result = run_toy(args.out or "runs/landscape-toy", progress=not args.quiet)
    else:
        result = run_lenet(args.out or "runs/landscape-lenet", data_dir=args.data_dir,
                           progress=not args.quiet)
    for path in result["figures"]["files"]:
        print(path)
    print(f"the same paths on the clean training loss: {result['clean_data_figures']}")
    return 0


# Commands whose parsers live beside their packages (uebench.bench.cli, uebench.multitask.cli);
# imported last so that this module is the one dispatch table of uebench.cli.
from uebench.bench.cli import cmd_bench, cmd_check, cmd_validate  # noqa: E402, F401
from uebench.multitask.cli import (  # noqa: E402, F401
    cmd_multitask_cross,
    cmd_multitask_evaluate,
    cmd_multitask_plot,
    cmd_multitask_poison,
    cmd_multitask_train,
    cmd_train_tasks,
)
