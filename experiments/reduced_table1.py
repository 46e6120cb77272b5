"""The paper's Table-1 question at reduced scale (issue #7.2): ResNet-18 at width 1/8 on a 5,000-
image stratified subset of the CIFAR-10 archive (the shared JPEG q75 re-encode), 20 epochs of the
paper code's recipe (SGD lr 0.1 constant, momentum 0.9, wd 5e-4, batch 256, crop + flip), clean vs
EM, OPS, LSP, TAP, REM and random noise, 3 seeds (init and data order; same images and poisons).

Every step resumes and reuses finished work; run them in order, each as a background job:

    .venv/bin/python experiments/reduced_table1.py poisons     # EM 0.6 h, TAP 1.7 h, REM ~2.5 h
    .venv/bin/python experiments/reduced_table1.py train       # 21 runs, ~3.5 min each on 1 core
    .venv/bin/python experiments/reduced_table1.py sal-fast    # epochs 4, 8, ..., 20; ~4 min/run
    .venv/bin/python experiments/reduced_table1.py sal-compat  # epochs 10, 20; ~8 min/run
    (each SAL step takes --seeds 0 / --seeds 1 ... to run one job per core)
    .venv/bin/python experiments/reduced_table1.py sal-early   # epochs 1-5, BN recalibrated or not
    .venv/bin/python experiments/reduced_table1.py report      # tables -> OUT/report.md

``--root`` (default ``runs/reduced-table1``) holds ``poisons/`` and ``runs/seed<k>/<method>/``.
SAL is measured after training from per-epoch snapshots (``uebench sal``): one measurement of the
paper's protocol (compat: 10 SGD passes over the data per layer and sign) costs ~20 training epochs,
so the study spends that budget where it answers the question (docs/findings.md §5):

- ``fast4``: the definition-faithful engine, K=3 steps, 384-image probe + 384 held-out images,
  every 4th epoch counted from the last (4, 8, 12, 16, 20), every seed;
- ``compat1k-dl``: the compat engine with the official origin (the epoch's running train loss,
  read as the per-image mean: what the paper code's formula gives under its drop_last=True), on a
  fixed stratified 1,024-image subset of each run's training data, epochs 10 and 20, every seed
  (≈ 3-5 min of one core per measurement); ``compat1k`` (step ``sal-compat-formula``): the same
  with the formula applied to these runs' short last batch, which scales the origin by 0.54;
- ``early`` / ``early-bnrecal``: fast SAL at epochs 1-5 as trained, and after re-estimating the
  BatchNorm statistics for the snapshot's weights (SAL is measured in eval mode).

Measured at this scale (docs/findings.md §5, 3 seeds): test accuracy clean 47.9 ± 6.2 %, EM 17.0,
OPS 20.6, LSP 28.8, TAP 14.0, random noise 51.4; see the report for UD.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ATTACKS: dict[str, dict[str, object]] = {
    "ops": {}, "lsp": {}, "random": {},
    "em": {"surrogate": "resnet18", "surrogate_width": 0.125, "max_rounds": 20},
    "tap": {"surrogate": "resnet18", "surrogate_width": 0.125, "surrogate_epochs": 15,
            "steps": 100, "restarts": 1},
    "rem": {"surrogate": "resnet18", "surrogate_width": 0.125, "train_steps": 300, "steps": 5,
            "samp_num": 2, "adv_steps": 5},
}
METHODS = ["clean", "ops", "em", "tap", "lsp", "random", "rem"]
SEEDS = [0, 1, 2]
DATA = {"dataset": "cifar10", "train_size": 5000, "test_size": 5000}
SAL_JOBS = {
    "sal-fast": [dict(tag="fast4", engine="fast", every=4,
                      options={"probe_size": 384, "eval_size": 384})],
    # origin_from: these runs train without drop_last (5,000 = 19 x 256 + 136), and the paper
    # code's running-loss formula would scale the origin by 20 x 136 / 5000 = 0.54; the per-image
    # running mean is what the formula gives under the paper's drop_last=True (docs/findings.md §5)
    "sal-compat": [dict(tag="compat1k-dl", engine="compat", every=10, subset=1024,
                        origin_from="train_loss")],
    # the same with the formula applied to this run's short last batch (kept for the comparison)
    "sal-compat-formula": [dict(tag="compat1k", engine="compat", every=10, subset=1024)],
    "sal-early": [dict(tag=f"early{s}", engine="fast", epochs=[1, 2, 3, 4, 5],
                       options={"probe_size": 384, "eval_size": 384}, recalibrate_bn=bool(s))
                  for s in ("", "-bnrecal")],
}
# seeds per SAL step, in the order they are measured (a partial study still gives seed-0 tables)
SAL_SEEDS = {"sal-fast": SEEDS, "sal-compat": SEEDS, "sal-compat-formula": SEEDS,
             "sal-early": [0]}


def poisons(root: Path) -> None:
    from uebench.attacks import generate_poison

    for name, params in ATTACKS.items():
        m = generate_poison(name, seed=0, out=root / "poisons" / name, params=params,
                            progress=False, **{k: v for k, v in DATA.items() if k != "test_size"})
        print(name, f"{m['generation_seconds']:.0f}s", flush=True)


def train(root: Path) -> None:
    from uebench.config import resolve_run_cfg
    from uebench.train.run import train_run

    for seed in SEEDS:
        for method in METHODS:
            poison = None if method == "clean" else str((root / "poisons" / method).resolve())
            if poison and not (Path(poison) / "manifest.json").exists():
                print("skip (no poison yet)", method, flush=True)
                continue
            cfg = resolve_run_cfg(**DATA, model="resnet18", epochs=20, seed=seed, poison=poison,
                                  overrides=["model.width=0.125", "data.subset_seed=0",
                                             "train.snapshots=true", f"init_seed={seed}"])
            s = train_run(cfg, root / "runs" / f"seed{seed}" / method, progress=False)
            print(method, seed, f"test_acc {s['test_acc']:.4f}", flush=True)


def sal(root: Path, step: str, seeds: list[int] | None = None) -> None:
    from uebench.learnability.posthoc import measure_run

    made = [m for m in METHODS  # a method without a poison (REM here) has no runs to wait for
            if m == "clean" or (root / "poisons" / m / "manifest.json").exists()]
    pending = [(root / "runs" / f"seed{s}" / m, job) for s in seeds or SAL_SEEDS[step]
               for m in made for job in SAL_JOBS[step]]
    while pending:  # runs still training are measured when they finish
        left = [(r, j) for r, j in pending if not (r / "summary.json").exists()]
        for run, job in (p for p in pending if p not in left):
            t0 = time.time()
            rows = measure_run(run, progress=False, **job)
            print(step, run.parent.name, run.name, len(rows), f"{time.time() - t0:.0f}s",
                  flush=True)
        pending = left
        if pending:
            time.sleep(120)


def report(root: Path) -> str:
    """Every table of the study from its run directories (partial while SAL is measured)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import study_tables as t

    study = t.Study(lambda seed, m: root / "runs" / f"seed{seed}" / m, METHODS, SEEDS)
    first = t._table(study, 0, "fast4")
    compat = t._table(study, 0, "compat1k-dl")
    parts = [
        "# Reduced-scale Table 1 (ResNet-18 x1/8, CIFAR-10 archive 5k, 20 epochs)\n",
        "## Fast engine, epochs 4, 8, 12, 16, 20, 3 seeds\n", t.main_table(study, "fast4"),
        "## Compat engine (official origin read as under drop_last=True), 1,024-image subset, "
        "epochs 10 and 20\n", t.main_table(study, "compat1k-dl"),
        "## Compat engine, origin = the official formula on these runs' short last batch\n",
        t.main_table(study, "compat1k"),
        "## Training losses (mean ± std [95 % CI] over seeds)\n", t.training_losses(study),
        "## Which epochs contribute to #LP (fast, seed 0)\n",
        t.epochs_contributing(first) if first else "-\n",
        "## Which epochs contribute to #LP (compat, seed 0)\n",
        t.epochs_contributing(compat) if compat else "-\n",
        "## Engines on the same snapshots (seed 0)\n",
        t.engines_on_late_epochs(study, "fast4", "compat1k-dl"),
        "## BatchNorm statistics lagging the weights (seed 0, early epochs, fast)\n",
        t.batchnorm_lag(study, "fast4"),
        "## UD vs the number of epochs trained (fast)\n",
        t.epochs_sensitivity(study, "fast4", (8, 12, 16, 20)),
        "## UD with β pooled over the clean seeds (fast)\n", t.pooled_beta(study, "fast4"),
        "## Threshold-free: mean log10 SAL ratio to the clean run (fast)\n",
        t.log_sal_ratio(study, "fast4"),
        "## Threshold-free: mean log10 SAL ratio to the clean run (compat)\n",
        t.log_sal_ratio(study, "compat1k-dl"),
    ]
    pngs = [f for tag in ("fast4", "compat1k-dl") for seed in SEEDS
            for f in t.figures(study, seed, tag, root / "figures" / f"{tag}-seed{seed}")]
    parts += ["## Figures (SAL heat maps, learnable layers per epoch)\n",
              "\n".join(f"- {f}" for f in pngs) + "\n"]
    text = "\n".join(parts)
    (root / "report.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("step", choices=["poisons", "train", *SAL_JOBS, "report"])
    p.add_argument("--root", default="runs/reduced-table1")
    p.add_argument("--seeds", default=None,
                   help="SAL steps: only these seeds, e.g. 2 or 0,1 (one job per core, no overlap)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # one core per job: run several jobs side by side
    root = Path(args.root)
    if args.step == "poisons":
        poisons(root)
    elif args.step == "train":
        train(root)
    elif args.step == "report":
        print(report(root))
    else:
        sal(root, args.step, [int(x) for x in args.seeds.split(",")] if args.seeds else None)


if __name__ == "__main__":
    main()
