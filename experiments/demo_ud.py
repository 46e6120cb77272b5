"""UD over victim seeds in the main job's current setting (issue #7; docs/findings.md §1): the
demo's poisons and recipe (batch 64, weight decay 5e-3, EM's surrogate batch 32), SAL measured in
training as the demo measures it (fast engine, 256 + 256 images), one thread per process. Seeds
vary the initial weights and the data order; the images and the poisons stay the same.

    .venv/bin/python experiments/demo_ud.py poisons --root R     # the demo's poisons (~1 min)
    .venv/bin/python experiments/demo_ud.py evaluate 0 --root R  # one seed per process (~7 min
    .venv/bin/python experiments/demo_ud.py evaluate 1 --root R  #  each on one core): run them
    .venv/bin/python experiments/demo_ud.py evaluate 2 --root R  #  side by side
    .venv/bin/python experiments/demo_ud.py report --seeds 0,1,2 --root R   # -> R/report.md

``--poisons DIR`` evaluates an existing set instead (``uebench demo``'s ``runs/demo/poisons``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

METHODS = ["clean", "em", "ops", "lsp", "random"]


def poisons(root: Path) -> None:
    from uebench.attacks import generate_poison
    from uebench.demo import DEMO_ATTACKS, demo_poisons

    torch.set_num_threads(2)  # what `make demo` does on the 2-core machine
    params = demo_poisons((1, 28, 28))
    for attack in DEMO_ATTACKS:
        generate_poison(attack, dataset="fashion-mnist", out=root / "poisons" / attack,
                        train_size=2000, seed=0, params=params[attack], progress=False)


def evaluate(root: Path, seed: int, poison_root: Path) -> None:
    from uebench.config import resolve_run_cfg
    from uebench.demo import DEMO_ATTACKS, DEMO_RECIPE, DEMO_SAL_OPTIONS
    from uebench.evaluation import evaluate as run_evaluation

    torch.set_num_threads(1)
    overrides = [*DEMO_RECIPE, "data.subset_seed=0",
                 *(f"sal.options.{k}={v}" for k, v in DEMO_SAL_OPTIONS["fast"].items())]
    cfg = resolve_run_cfg(dataset="fashion-mnist", model="resnet18", train_size=2000,
                          test_size=2000, epochs=10, seed=seed, sal_engine="fast",
                          overrides=overrides)
    out = root / "eval" / f"seed{seed}"
    run_evaluation(cfg, [poison_root / a for a in DEMO_ATTACKS], out=out, progress=False)
    print((out / "results.md").read_text())


def report(root: Path, seeds: list[int]) -> str:
    import study_tables as t

    study = t.Study(lambda seed, m: root / "eval" / f"seed{seed}" / "runs" / m, METHODS, seeds)
    parts = [f"# UD over seeds in the main job's setting (seeds {', '.join(map(str, seeds))})\n",
             t.main_table(study, None),
             "## UD with β pooled over the clean seeds\n", t.pooled_beta(study, None),
             "## Threshold-free: mean log10 SAL ratio to the clean run\n",
             t.log_sal_ratio(study, None),
             "## UD vs the number of epochs trained\n",
             t.epochs_sensitivity(study, None, (4, 6, 8, 10)),
             "## Training losses\n", t.training_losses(study)]
    text = "\n".join(parts)
    (root / "report.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("step", choices=["poisons", "evaluate", "report"])
    p.add_argument("seed", nargs="?", type=int, default=0, help="evaluate: the victim seed")
    p.add_argument("--seeds", default="0,1,2", help="report: seeds to aggregate")
    p.add_argument("--poisons", default=None, help="evaluate: poison root (default R/poisons)")
    p.add_argument("--root", default="runs/demo-ud")
    args = p.parse_args(argv)
    root = Path(args.root)
    if args.step == "poisons":
        poisons(root)
    elif args.step == "evaluate":
        evaluate(root, args.seed, Path(args.poisons) if args.poisons else root / "poisons")
    else:
        print(report(root, [int(s) for s in args.seeds.split(",")]))


if __name__ == "__main__":
    main()
