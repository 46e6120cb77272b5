"""Which victim recipe and EM setting make the main job's poisons work, and how much each
poison's cost varies (issue #7.1; docs/findings.md §1). Fashion-MNIST 2000/2000, ResNet-18 x1/8,
SGD momentum 0.9, 10 epochs; test accuracy only (no SAL), victim seeds 0-2 (``--seeds``), one thread
per job.

    .venv/bin/python experiments/demo_recipes.py poisons             # ~25 min (EM 8 draws)
    .venv/bin/python experiments/demo_recipes.py train R0 B64        # ~5-10 min per recipe
    .venv/bin/python experiments/demo_recipes.py report              # tables from the run dirs

Poisons (all from the demo's 2,000-image subset, seed 0, published budgets). EM's alternating
search is chaotic in floating-point order, so the same settings generated with 1, 2, 3 or 4
threads give independent *draws* of one poison (what different machines would make):
- ``em2t`` / ``em1t``: EM as the demo made it until this stop (surrogate batch 256: 10 batches
  per round = 1.3 epochs of the 2,000 images; 20 steps of 0.8/255; stop at 99 %, <= 10 rounds);
- ``emfull2t`` / ``emfull1t``: the same searches run 8 full rounds (``stop_acc=1.0``);
- ``emb32ap`` (1 thread), ``emb32ap_2t`` .. ``_4t``: the demo's EM now: surrogate batch 32, so a
  round trains on 0.16 of an epoch as the original's 10 x 512 of 50,000 images (0.1) does, and
  APBench's noise update (5 steps of 1.6/255) to keep the generation's cost; <= 30 rounds;
- ``emb32`` (1 thread): batch 32 with the original 20 x 0.8/255 update (4x the cost);
- ``emb16ap`` (1 thread): batch 16 (0.08 epoch per round);
- ``emcw``: class-wise EM; ``ar``: autoregressive noise; ``ops``, ``lsp``, ``random`` as the demo.
Recipes are changes to ``BASE`` (the demo's recipe until this stop: lr 0.1, wd 5e-4, batch 128,
cosine, no augmentation); ``B64`` is the demo's recipe now.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

# the demo's recipe and EM until it moved to batch 64 / wd 5e-3 / EM batch 32; ud_uncertainty.py's
# study ran with them too
BASE = ("model.width=0.125", "train.optimizer=sgd", "train.lr=0.1", "train.momentum=0.9",
        "train.weight_decay=5e-4", "train.batch_size=128", "train.schedule=cosine",
        "train.augment=none")
RECIPES = {
    "R0": [],
    "R1": ["train.augment=crop_flip"],
    "R2": ["train.schedule=constant"],  # the paper code's schedule
    "LR05": ["train.lr=0.05"],
    "LR2": ["train.lr=0.2"],
    "B256": ["train.batch_size=256"],
    "B32": ["train.batch_size=32"],
    "B64": ["train.batch_size=64"],
    "WD": ["train.weight_decay=5e-3"],
    "B64wd": ["train.batch_size=64", "train.weight_decay=5e-3"],  # the demo's recipe now
}
EM = {"surrogate": "resnet18", "surrogate_width": 0.125}
EM_OLD = {**EM, "batch_size": 256, "max_rounds": 10}
# 1.6/255 as these draws were generated (rounded to 8 places; the demo passes 1.6 / 255)
EM_B32 = {**EM, "batch_size": 32, "steps": 5, "step_size": 0.00627451, "max_rounds": 30}
POISONS: dict[str, tuple[str, str, dict, int]] = {  # name -> attack, preset, params, threads
    "em2t": ("em", "original", EM_OLD, 2),
    "em1t": ("em", "original", EM_OLD, 1),
    "emfull2t": ("em", "original", {**EM_OLD, "max_rounds": 8, "stop_acc": 1.0}, 2),
    "emfull1t": ("em", "original", {**EM_OLD, "max_rounds": 8, "stop_acc": 1.0}, 1),
    "emb32ap": ("em", "original", EM_B32, 1),
    "emb32ap_2t": ("em", "original", EM_B32, 2),
    "emb32ap_3t": ("em", "original", EM_B32, 3),
    "emb32ap_4t": ("em", "original", EM_B32, 4),
    "emb32": ("em", "original", {**EM, "batch_size": 32, "max_rounds": 25}, 1),
    "emb16ap": ("em", "original", {**EM_B32, "batch_size": 16, "max_rounds": 40}, 1),
    "emcw": ("em", "classwise", {**EM, "batch_size": 256}, 1),
    "ops": ("ops", "original", {}, 1),
    "lsp": ("lsp", "original", {"eps": 0.6586}, 1),
    "random": ("random", "original", {}, 1),
    "ar": ("ar", "original", {}, 1),
}
# the EM draws pooled in the summary: the old setting's four, the new setting's four
EM_DRAWS = {"old": ["em2t", "em1t", "emfull2t", "emfull1t"],
            "b32": ["emb32ap", "emb32ap_2t", "emb32ap_3t", "emb32ap_4t"]}


def poisons(root: Path, names: list[str]) -> None:
    from uebench.attacks import generate_poison
    from uebench.attacks.lsp import lsp_radius

    POISONS["lsp"][2]["eps"] = lsp_radius((1, 28, 28))  # as the demo
    for name in names:
        attack, preset, params, threads = POISONS[name]
        torch.set_num_threads(threads)
        m = generate_poison(attack, dataset="fashion-mnist", train_size=2000, seed=0,
                            out=root / "poisons" / name, preset=preset, params=params,
                            progress=False)
        print(name, f"{m['generation_seconds']:.0f}s", m.get("diagnostics", ""), flush=True)


def train(root: Path, recipes: list[str], names: list[str], seeds: list[int]) -> None:
    from uebench.config import resolve_run_cfg
    from uebench.train.run import train_run

    torch.set_num_threads(1)
    for r in recipes:
        for seed in seeds:
            for name in ["clean", *names]:
                poison = None if name == "clean" else str(root / "poisons" / name)
                cfg = resolve_run_cfg(dataset="fashion-mnist", model="resnet18", train_size=2000,
                                      test_size=2000, epochs=10, seed=seed, poison=poison,
                                      overrides=[*BASE, *RECIPES[r], "data.subset_seed=0"])
                s = train_run(cfg, root / "runs" / r / f"s{seed}" / name, progress=False)
                print(r, seed, name, round(s["test_acc"], 4), flush=True)


def _accuracies(root: Path, recipe: str) -> dict[tuple[int, str], float]:
    """Test accuracy (%) by (victim seed, poison) of every complete run of a recipe."""
    acc = {}
    for f in (root / "runs" / recipe).glob("s*/*/summary.json"):
        acc[int(f.parent.parent.name[1:]), f.parent.name] = \
            100 * json.loads(f.read_text())["test_acc"]
    return acc


def _seeds(acc: dict[tuple[int, str], float], name: str) -> list[int]:
    return sorted(s for s, n in acc if n == name and (s, "clean") in acc)


def _costs(acc: dict[tuple[int, str], float], name: str) -> list[float]:
    return [acc[s, "clean"] - acc[s, name] for s in _seeds(acc, name)]


def _pooled(costs: list[float]) -> str:
    if len(costs) < 2:
        return "–"
    below = sum(c < 20 for c in costs)
    return (f"{statistics.mean(costs):.1f} ± {statistics.stdev(costs):.1f} "
            f"[{min(costs):.1f}, {max(costs):.1f}], < 20 in {below}/{len(costs)}")


def report(root: Path) -> str:
    """Accuracy cost (points below the same seed's clean run) per recipe and poison, and per
    recipe the cost pooled over EM draws and victim seeds."""
    lines = ["| recipe | poison | test acc (%) per seed | cost (points) per seed | mean cost |",
             "|---|---|---|---|---:|"]
    summary = ["| recipe | clean acc (%) | EM, old setting (4 draws × seeds) | "
               "EM, batch 32 (4 draws × seeds) | LSP | OPS | random |",
               "|---|---|---|---|---|---|---|"]
    for r in RECIPES:
        acc = _accuracies(root, r)
        for name in ["clean", *POISONS]:
            seeds = _seeds(acc, name)
            if not seeds:
                continue
            costs = _costs(acc, name)
            lines.append(f"| {r} | {name} | {' / '.join(f'{acc[s, name]:.1f}' for s in seeds)} | "
                         + ("–" if name == "clean" else
                            f"{' / '.join(f'{c:.1f}' for c in costs)} | "
                            f"{sum(costs) / len(costs):.1f}")
                         + (" | – |" if name == "clean" else " |"))
        if not any(k[1] == "clean" for k in acc):
            continue
        pooled = {k: _pooled([c for n in v for c in _costs(acc, n)]) for k, v in EM_DRAWS.items()}
        per_seed = {n: " / ".join(f"{c:.1f}" for c in _costs(acc, n)) or "–"
                    for n in ("lsp", "ops", "random")}
        clean = " / ".join(f"{acc[s, 'clean']:.1f}" for s in _seeds(acc, "clean"))
        summary.append(f"| {r} | {clean} | {pooled['old']} | {pooled['b32']} | {per_seed['lsp']} "
                       f"| {per_seed['ops']} | {per_seed['random']} |")
    text = "\n".join(lines) + "\n\nPooled (cost in points; mean ± std [min, max]):\n\n" \
        + "\n".join(summary) + "\n"
    (root / "report.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("step", choices=["poisons", "train", "report"])
    p.add_argument("recipes", nargs="*", default=list(RECIPES))
    p.add_argument("--poisons", default=",".join(POISONS),
                   help="comma-separated poison names (default: all)")
    p.add_argument("--seeds", default="0,1,2", help="victim seeds to train (default 0,1,2)")
    p.add_argument("--root", default="runs/demo-recipes")
    args = p.parse_args(argv)
    root, names = Path(args.root), args.poisons.split(",")
    unknown = sorted(set(names) - set(POISONS))
    if unknown:
        p.error(f"unknown poison(s) {unknown}; known: {sorted(POISONS)}")
    if args.step == "poisons":
        poisons(root, names)
    elif args.step == "train":
        train(root, args.recipes, names, [int(k) for k in args.seeds.split(",")])
    else:
        print(report(root))


if __name__ == "__main__":
    main()
