"""Every registered unlearnable-example attack on CPU-sized subsets: cost, norms and effect.

For each method (random, ops, lsp, ar, em, rem, tap, hypo, dc) and dataset (Fashion-MNIST and
CIFAR-10 -- here the shared JPEG q75 re-encode -- 2,000 train / 2,000 test images by default) the
poison is generated with CPU-scaled parameters (LeNet-5 surrogates, few rounds/steps; see
``plan()``; every non-default parameter is printed in the table), then a LeNet-5 (3 input
channels on CIFAR-10: the "small CNN") is trained on the poisoned set with two recipes and its
accuracy on the clean test split is reported next to the clean-data reference row:

- Adam: lr 2e-3, wd 0, batch 32, cosine schedule, no augmentation;
- SGD:  lr 0.05, momentum 0.9, wd 5e-4, batch 32, cosine schedule, no augmentation.

Poisons are cached under ``--work`` (one directory per dataset / subset / method / parameter
hash; ``generate_poison`` returns an existing identical poison), so a re-run only retrains.
"gen s" is the generation time recorded in the poison's manifest (the first run's).

    .venv/bin/python benchmarks/attacks.py          # full table: 13.6 min measured (1 thread,
                                                    # busy 2-core CPU); cached re-run ~4 min
    .venv/bin/python benchmarks/attacks.py --quick  # smoke run (500/500 images, 2 epochs), 1.5 min
    .venv/bin/python benchmarks/attacks.py --datasets fashion-mnist --methods ops,em

The table goes to stdout and, with the command, torch version, thread count and date, to
``--results`` (default benchmarks/attacks_results.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch

from uebench import Runtime, get_model, load_dataset
from uebench.attacks import attack_info, generate_poison
from uebench.attacks.lsp import lsp_radius
from uebench.config import TrainCfg
from uebench.data import ImageSet
from uebench.poisons import load_poisoned, read_manifest
from uebench.train import evaluate, fit
from uebench.utils.stored import add_save_option, report_and_store

METHODS = ("random", "ops", "lsp", "ar", "em", "rem", "tap", "hypo", "dc")
DATASETS = ("fashion-mnist", "cifar10")
LABEL = {"fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10 (JPEG q75)"}
ROOT = Path(__file__).resolve().parent.parent


def plan(method: str, shape: tuple[int, int, int], quick: bool) -> tuple[str, dict[str, Any], str]:
    """(preset, parameter overrides, note) of a method's CPU-scaled run."""
    sur = {"surrogate": "lenet5"}
    if method == "lsp":
        return "original", {"eps": round(lsp_radius(shape), 4)}, "6/255-equivalent L2"
    if method in ("random", "ops", "ar"):
        return "original", {}, ""
    if method == "em":
        return "apbench", {**sur, "max_rounds": 2 if quick else 10}, "5 x 1.6/255 steps, bs 128"
    if method == "rem":
        # Fu et al.'s variant with a short adversarial surrogate training and a lighter EOT
        p = {**sur, "train_steps": 4 if quick else 30, "steps": 5, "samp_num": 1 if quick else 2,
             "adv_steps": 5}
        return "original", p, "scaled down"
    if method == "tap":
        p = {**sur, "surrogate_epochs": 2 if quick else 10, "steps": 10 if quick else 60,
             "restarts": 1 if quick else 2}
        return "original", p, "scaled down"
    if method == "hypo":
        return "apbench", {**sur, "surrogate_epochs": 2 if quick else 10,
                           "steps": 5 if quick else 20}, "linf 8/255, 0.8/255 steps"
    if method == "dc":
        if quick:
            return "cpu", {"outer_epochs": 1}, "2 cls epochs, lenet5, UNet width 16"
        return "cpu", {}, "5 rounds x 2 cls epochs, lenet5, UNet width 16"
    raise ValueError(method)


def recipes(epochs: int) -> dict[str, TrainCfg]:
    common = dict(epochs=epochs, batch_size=32, schedule="cosine", augment="none",
                  precision="fp32", channels_last="off")
    return {
        "adam": TrainCfg(optimizer="adam", lr=2e-3, weight_decay=0.0, **common),
        "sgd": TrainCfg(optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4, **common),
    }


def fmt_param(v: Any) -> str:
    if isinstance(v, float):
        for den in (255,):
            if abs(v * den - round(v * den, 1)) < 1e-9 and v < 1:
                return f"{round(v * den, 1):g}/{den}"
        return f"{v:g}"
    return str(v)


def describe(method: str, preset: str, params: dict[str, Any], note: str) -> str:
    bits = [] if preset == "original" else [preset]
    bits += [f"{k}={fmt_param(v)}" for k, v in params.items() if k != "surrogate"]
    if params.get("surrogate"):
        bits.append(f"sur={params['surrogate']}")
    if note:
        bits.append(note)
    return f"{method} ({', '.join(bits)})" if bits else method


def norms_text(measured: dict[str, float]) -> str:
    return (f"{measured['linf_max'] * 255:.1f}/255 / {measured['l2_max']:.2f} / "
            f"{int(measured['l0_max'])}")


def victim_accs(x: torch.Tensor, clean: ImageSet, test: ImageSet, cfgs: dict[str, TrainCfg],
                seed: int) -> dict[str, float]:
    """Clean-test accuracy of LeNet-5 trained on ``x`` (labels of ``clean``) per recipe.

    Same initial weights and data order for every training set; normalised with the clean
    training set's channel statistics (as ``uebench train`` does).
    """
    mean, std = clean.channel_stats()
    c, h, w = x.shape[1:]
    out = {}
    for key, cfg in cfgs.items():
        torch.manual_seed(seed)
        model = get_model("lenet5", in_channels=c, image_size=(h, w), num_classes=10,
                          mean=mean, std=std)
        fit(model, x, clean.y, cfg=cfg, rt=Runtime("cpu", seed, False))
        out[key] = evaluate(model, test.x, test.y)["acc"]
    return out


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated")
    ap.add_argument("--train-size", type=int, default=None, help="default 2000 (500 with --quick)")
    ap.add_argument("--test-size", type=int, default=None, help="default 2000 (500 with --quick)")
    ap.add_argument("--epochs", type=int, default=None,
                    help="victim epochs; default 8 (2 with --quick)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads; 0 = 1 if the machine is busy (load >= 1) else all cores")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_attacks")
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "attacks_results.md",
                    help="Markdown output ('-' = do not write)")
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny subsets and budgets")
    ap.add_argument("--progress", action="store_true", help="show the attacks' progress bars")
    add_save_option(ap)
    args = ap.parse_args()
    report_and_store(args.save, "benchmarks/attacks.py", lambda: report(args))


def report(args: argparse.Namespace) -> None:
    q = args.quick
    n_train = args.train_size or (500 if q else 2000)
    n_test = args.test_size or (500 if q else 2000)
    epochs = args.epochs or (2 if q else 8)
    datasets = [d for d in args.datasets.split(",") if d]
    methods = [m for m in args.methods.split(",") if m]
    for m in methods:
        attack_info(m)  # unknown names fail now
    threads = args.threads or (1 if os.getloadavg()[0] >= 1.0 else (os.cpu_count() or 1))
    torch.set_num_threads(threads)
    t_start = time.perf_counter()
    cfgs = recipes(epochs)
    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    for ds in datasets:
        splits = load_dataset(ds, train_size=n_train, test_size=n_test, seed=args.seed)
        clean, test = splits.train, splits.test
        shape = clean.image_shape
        t0 = time.perf_counter()
        a = victim_accs(clean.x, clean, test, cfgs, args.seed)
        log(f"{ds} clean: adam {a['adam']:.4f} sgd {a['sgd']:.4f} "
            f"({time.perf_counter() - t0:.0f} s)")
        rows.append({"dataset": ds, "method": "clean (no poison)", "gen": None, "norms": "-", **a})
        for m in methods:
            preset, params, note = plan(m, shape, q)
            key = json.dumps([m, preset, params, args.seed, n_train], sort_keys=True)
            digest = hashlib.sha256(key.encode()).hexdigest()[:8]
            out = args.work / ds / f"n{n_train}-s{args.seed}" / f"{m}-{digest}"
            label = describe(m, preset, params, note)
            try:
                t0 = time.perf_counter()
                cached = (out / "manifest.json").exists()
                manifest = generate_poison(m, dataset=ds, out=out, train_size=n_train,
                                           seed=args.seed, preset=preset, params=params,
                                           device="cpu", progress=args.progress)
                log(f"{ds} {m}: poison {'cached' if cached else 'generated'} in "
                    f"{time.perf_counter() - t0:.0f} s -> {out}")
                poisoned = load_poisoned(out, clean)
                t0 = time.perf_counter()
                a = victim_accs(poisoned.x, clean, test, cfgs, args.seed)
                log(f"{ds} {m}: adam {a['adam']:.4f} sgd {a['sgd']:.4f} "
                    f"({time.perf_counter() - t0:.0f} s)")
                manifest = read_manifest(out)
                rows.append({"dataset": ds, "method": label, "gen": manifest["generation_seconds"],
                             "norms": norms_text(manifest["measured"]), **a})
            except Exception as exc:  # keep the other methods; the table says what failed
                import traceback

                traceback.print_exc()
                failures.append(f"{ds} {m}: {type(exc).__name__}: {exc}")
                rows.append({"dataset": ds, "method": f"{label} -- FAILED ({type(exc).__name__})",
                             "gen": None, "norms": "-", "adam": None, "sgd": None})
    total = time.perf_counter() - t_start

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}"

    lines = ["| dataset | method (params) | gen s | linf / l2 / l0 | acc Adam | acc SGD |",
             "|---|---|---:|---|---:|---:|"]
    for r in rows:
        gen = "-" if r["gen"] is None else f"{r['gen']:.1f}"
        lines.append(f"| {LABEL.get(r['dataset'], r['dataset'])} | {r['method']} | {gen} | "
                     f"{r['norms']} | {pct(r['adam'])} | {pct(r['sgd'])} |")
    table = "\n".join(lines)
    print(table)
    command = " ".join([".venv/bin/python", "benchmarks/attacks.py",
                        *map(shlex.quote, sys.argv[1:])])
    info = (f"torch {torch.__version__}, {threads} thread(s) of {os.cpu_count()} cores, "
            f"{dt.datetime.now().strftime('%Y-%m-%d %H:%M')}, total wall time {total / 60:.1f} min")
    print(f"\n{info}")
    for f in failures:
        print(f"FAILED: {f}")
    if str(args.results) != "-":
        text = [
            "## Attacks on CPU subsets (benchmarks/attacks.py)", "",
            "```", command, "```", "",
            f"{info}. {n_train} train / {n_test} test images per dataset (seed {args.seed}); the "
            "CIFAR-10 copy is the shared JPEG q75 re-encode. Victim: LeNet-5 (3-channel on "
            f"CIFAR-10), {epochs} epochs, batch 32, cosine, no augmentation; Adam = lr 2e-3, wd 0; "
            "SGD = lr 0.05, momentum 0.9, wd 5e-4. Accuracy (%) on the clean test split after the "
            "last epoch. "
            "In brackets: the preset (`original` when none is named), the parameters that override "
            "it (`sur` = surrogate model; unlisted ones are the preset's), then a plain-words note "
            "(the preset's main settings, or 'scaled down' where the overrides cut the original "
            "budget for CPU). Norms are the largest per-image values of the stored "
            "(quantized) delta: linf in /255, l2 in [0, 1] units, l0 in changed pixel positions. "
            "gen s = generation time from the poison's manifest (CPU).",
            "", table, "",
        ]
        text += [f"- FAILED: {f}" for f in failures]
        args.results.write_text("\n".join(text).rstrip() + "\n")
        print(f"wrote {args.results}", file=sys.stderr)


if __name__ == "__main__":
    main()
