"""The UD-uncertainty study's report (experiments/ud_uncertainty.py), from run directories only."""

from __future__ import annotations

from pathlib import Path

import study_tables as t

METHODS = ["clean", "em", "ops", "lsp", "random"]


def report(root: Path, seeds: list[int] | None = None) -> str:
    root = Path(root)
    seeds = list(seeds or [0, 1, 2, 3, 4])
    study = t.Study(lambda seed, m: root / "eval" / f"seed{seed}" / "runs" / m, METHODS, seeds)
    parts = [f"# How much to trust a UD (Fashion-MNIST, ResNet-18 x1/8, 10 epochs, "
             f"seeds {', '.join(map(str, seeds))})\n",
             "## As measured in training (fast, ε 0.05, 384 + 384 images)\n",
             t.main_table(study, None)]
    for tag, what in (("eps0.02", "ε 0.02"), ("eps0.1", "ε 0.1"),
                      ("fast-default", "the engine's default settings (1024 + 1024 images)"),
                      ("probe256", "a 256 + 256-image probe (the demo's setting)")):
        parts += [f"## Re-measured on the same snapshots: {what}\n", t.main_table(study, tag)]
    parts += ["## Engines on the same snapshots (fast in training vs compat, official origin)\n",
              t.engines_on_late_epochs(study, None, "compat"),
              "## UD vs the number of epochs trained (as measured in training)\n",
              t.epochs_sensitivity(study, None, (4, 6, 8, 10)),
              "## UD with β pooled over the clean seeds\n", t.pooled_beta(study, None),
              "## Threshold-free: mean log10 SAL ratio to the clean run\n",
              t.log_sal_ratio(study, None),
              "## Training losses\n", t.training_losses(study)]
    text = "\n".join(parts)
    (root / "report.md").write_text(text)
    return text
