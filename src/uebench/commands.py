"""The core ``uebench`` commands: each registers its arguments and its handler together
(:func:`uebench.commandline.command`) and is a thin wrapper around the Python API."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from uebench.attacks import ATTACKS, attack_info
from uebench.attacks.generate import generate_poison
from uebench.commandline import add_flag, add_quiet, command, command_group, flag_values
from uebench.config import parse_number, parse_params, resolve_run_cfg
from uebench.data import DATASETS
from uebench.data.download import download
from uebench.defenses import DEFENSES, defense_info
from uebench.demo import accuracy_costs, demo_tables, run_demo
from uebench.errors import DataNotFoundError, UebenchError
from uebench.evaluation import evaluate
from uebench.learnability.distance import checked_beta
from uebench.learnability.posthoc import measure_run
from uebench.learnability.report import recompute
from uebench.models import MODELS, get_model, layer_names
from uebench.multitask import MULTITASK_DATASETS, load_multitask
from uebench.multitask.cli import cmd_multitask_train
from uebench.multitask.config import MULTITASK_FLAGS
from uebench.poisons import export_poison, import_poison
from uebench.train.run import is_complete, train_run
from uebench.utils.stored import save_result


def _data_args(p: argparse.ArgumentParser, *, dataset_required: bool = True) -> None:
    add_flag(p, "dataset", required=dataset_required)
    for name in ("data_dir", "train_size", "test_size", "seed", "device"):
        add_flag(p, name)
    add_quiet(p)


def _run_args(p: argparse.ArgumentParser) -> None:
    for name in ("model", "epochs", "defense", "poison_ratio", "poison_mix"):
        add_flag(p, name)
    p.add_argument("--config", default=None, help="YAML file with RunCfg keys")
    p.add_argument("overrides", nargs="*", help="key=value, e.g. train.lr=0.05 model.width=0.5")


def _print_table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    print(fmt.format(*header))
    print(fmt.format(*("-" * w for w in widths)))
    for r in rows:
        print(fmt.format(*r))


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
    _print_table(rows, ["dataset", "kind", "available", "description"])
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


@command("defenses", help="list defenses with their kind, defaults and SAL origin")
def cmd_defenses(args: argparse.Namespace) -> int:
    rows = []
    for name in DEFENSES.names():
        info = defense_info(name)
        defaults = ", ".join(f"{k}={v!r}" for k, v in info.defaults.items()) or "-"
        rows.append([name, info.kind, defaults, info.official_origin, info.description])
    _print_table(rows, ["defense", "kind", "defaults", "official SAL origin", "description"])
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
    _print_table(rows, ["attack", "budget (default)", "presets", "surrogate", "description"])
    return 0


def _run_cfg_from_args(args: argparse.Namespace) -> Any:
    return resolve_run_cfg(
        config_file=getattr(args, "config", None),
        overrides=getattr(args, "overrides", []) or [],
        **flag_values(args),
    )


def _train_arguments(p: argparse.ArgumentParser) -> None:
    _data_args(p, dataset_required=False)
    _run_args(p)
    add_flag(p, "poison")
    p.add_argument("--out", required=True, help="run directory")
    add_flag(p, "tasks", table=MULTITASK_FLAGS)  # present = a multi-task run


@command("train", help="train one model into a run directory", arguments=_train_arguments,
         resumable=True)
def cmd_train(args: argparse.Namespace) -> int:
    if getattr(args, "tasks", None):
        return cmd_multitask_train(args)
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


command_group("poison", help="generate, import or export a poison")


def _poison_generate_arguments(p: argparse.ArgumentParser) -> None:
    _data_args(p)
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


def _seeds(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UebenchError(f"--seeds must be comma-separated integers, got {text!r}") from None


def _evaluate_arguments(p: argparse.ArgumentParser) -> None:
    _data_args(p)
    _run_args(p)
    p.add_argument("--poisons", nargs="+", required=True, help="poison directories")
    p.add_argument("--seeds", default=None,
                   help="several seeds, e.g. 0,1,2: mean ± std and a 95%% interval per run")
    p.add_argument("--beta-from", default="undefended", choices=["undefended", "defended"],
                   help="with --defense: the clean run that sets β and the UD denominator")
    add_flag(p, "sal_engine")
    add_flag(p, "sal_origin")
    p.add_argument("--no-control", action="store_true",
                   help="do not train the random-noise control at each poison's budget")
    p.add_argument("--recalibrate-bn", action="store_true",
                   help="also measure SAL with BatchNorm statistics re-estimated (ud_bn)")
    p.add_argument("--out", required=True)


@command("evaluate", help="Algorithm 1: clean vs poisoned (and random-noise controls) with SAL "
                          "-> UD and statistics", arguments=_evaluate_arguments, resumable=True)
def cmd_evaluate(args: argparse.Namespace) -> int:
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


def _download_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name")
    add_flag(p, "data_dir")


@command("download", help="download a dataset from its official source (checksummed)",
         arguments=_download_arguments)
def cmd_download(args: argparse.Namespace) -> int:
    path = download(args.name, Path(args.data_dir) if args.data_dir else None)
    print(f"downloaded {args.name} to {path}")
    return 0


def _demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/demo")
    add_flag(p, "train_size")
    add_flag(p, "test_size")
    add_flag(p, "epochs", help="training epochs (default: the demo's)")
    add_flag(p, "seed", default=0)
    p.add_argument("--seeds", default=None,
                   help="several seeds, e.g. 0,1,2: paired t-intervals against the controls "
                        "(each seed costs about as much as the default run)")
    add_flag(p, "sal_engine", default="fast")
    add_flag(p, "data_dir")
    p.add_argument("--save", default=None, metavar="NAME",
                   help="store the tables as results/NAME.json (what README quotes)")
    add_quiet(p)


@command("demo", help="the main job: EM/OPS/LSP against clean training and random-noise "
                      "controls", arguments=_demo_arguments, resumable=True)
def cmd_demo(args: argparse.Namespace) -> int:
    import time


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
        command = "uebench demo " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
            if k in ("train_size", "test_size", "epochs", "seeds") and v is not None)
        values = {k: v for k, v in result.items() if k != "files"}
        values["seconds"] = seconds
        path = save_result(args.save, values, command=command.strip(),
                           tables=demo_tables(result))
        print(f"stored: {path}")
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
    add_quiet(p)


@command("reproduce", help="a paper figure as one command (fig1: toy, fig10: LeNet)",
         arguments=_reproduce_arguments, resumable=True)
def cmd_reproduce(args: argparse.Namespace) -> int:
    from uebench.landscape import run_lenet, run_toy  # lazy: matplotlib

    if args.figure == "fig1":
        result = run_toy(args.out or "runs/landscape-toy", progress=not args.quiet)
    else:
        result = run_lenet(args.out or "runs/landscape-lenet", data_dir=args.data_dir,
                           progress=not args.quiet)
    for path in result["figures"]["files"]:
        print(path)
    print(f"the same paths on the clean training loss: {result['clean_data_figures']}")
    return 0

