"""Tables of the reduced-scale Table-1 study, regenerated from its run directories only.

    .venv/bin/python experiments/reduced_table1.py report [--root runs/reduced-table1]

Sections appear as their SAL measurements exist (a study still running gives a partial report).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from uebench.errors import UebenchError
from uebench.learnability.aggregate import aggregate_seeds, markdown
from uebench.learnability.distance import learnable_counts
from uebench.learnability.report import load_run, recompute
from uebench.learnability.stats import format_summary, summarize
from uebench.learnability.threshold import epoch_thresholds, sal_matrix

METHODS = ["clean", "ops", "em", "tap", "lsp", "random", "rem"]


def _runs(root: Path, seed: int, tag: str) -> list[Path]:
    out = []
    for m in METHODS:
        run = root / "runs" / f"seed{seed}" / m
        if (run / "summary.json").exists() and (run / "sal" / f"{tag}.jsonl").exists():
            out.append(run)
    return out


def _table(root: Path, seed: int, tag: str, epochs: int | None = None) -> dict[str, Any] | None:
    runs = _runs(root, seed, tag)
    if not runs or runs[0].name != "clean" or len(runs) < 2:
        return None
    if epochs is None:
        return recompute(runs[0], runs[1:], sal_tag=tag)
    from uebench.learnability.distance import ud_table

    records = [load_run(r, sal_tag=tag) for r in runs]
    cut = [type(r)(r.name, [row for row in r.rows if row["epoch"] <= epochs], r.summary,
                   r.config, r.path) for r in records]
    return ud_table(cut[0], cut[1:])


def main_table(root: Path, tag: str, seeds: list[int]) -> str:
    per_seed = [t for t in (_table(root, s, tag) for s in seeds) if t is not None]
    if not per_seed:
        return f"(no `{tag}` SAL yet)\n"
    used = [s for s in seeds if _table(root, s, tag) is not None]
    return markdown(aggregate_seeds(per_seed, used))


def training_losses(root: Path, seeds: list[int]) -> str:
    lines = ["| run | final train loss | min train loss | final train acc | test acc |",
             "|---|---:|---:|---:|---:|"]
    for m in METHODS:
        finals, mins, accs, tests = [], [], [], []
        for s in seeds:
            path = root / "runs" / f"seed{s}" / m / "metrics.jsonl"
            if not (path.parent / "summary.json").exists():
                continue
            rows = [json.loads(line) for line in path.open()]
            finals.append(rows[-1]["train_loss"])
            mins.append(min(r["train_loss"] for r in rows))
            accs.append(rows[-1]["train_acc"])
            tests.append(rows[-1]["test_acc"])
        if finals:
            lines.append(f"| {m} | {format_summary(summarize(finals))} | "
                         f"{format_summary(summarize(mins))} | "
                         f"{format_summary(summarize(accs), 3)} | "
                         f"{format_summary(summarize(tests), 3)} |")
    return "\n".join(lines) + "\n"


def epochs_contributing(table: dict[str, Any]) -> str:
    lines = ["| run | learnable layers per measured epoch (of {}) |".format(len(table["layers"])),
             "|---|---|"]
    for r in table["runs"]:
        lines.append(f"| {r['name']} | {' '.join(map(str, r['learnable_per_epoch']))} |")
    return "\n".join(lines) + "\n"


def engines_on_late_epochs(root: Path) -> str:
    """fast vs compat SAL on the same snapshots (seed 0, epochs both measured)."""
    lines = ["| run | epoch | train loss | median fast/compat | layers fast > compat |",
             "|---|---:|---:|---:|---:|"]
    for m in METHODS:
        run = root / "runs" / "seed0" / m
        try:
            fast = {r["epoch"]: r["sal"] for r in load_run(run, sal_tag="fast").rows}
            compat = {r["epoch"]: r["sal"] for r in load_run(run, sal_tag="compat1k").rows}
        except UebenchError:
            continue
        metrics = {json.loads(x)["epoch"]: json.loads(x) for x in (run / "metrics.jsonl").open()}
        for e in sorted(set(fast) & set(compat)):
            f = np.array([fast[e][k] for k in fast[e]])
            c = np.array([compat[e][k] for k in fast[e]])
            ratio = np.median(f / np.maximum(c, 1e-12))
            lines.append(f"| {m} | {e} | {metrics[e]['train_loss']:.3f} | {ratio:.2f} | "
                         f"{int((f > c).sum())}/{len(f)} |")
    return "\n".join(lines) + "\n"


def batchnorm_lag(root: Path) -> str:
    """Mean SAL per early epoch as trained vs with BatchNorm statistics re-estimated."""
    lines = ["| run | epoch | mean SAL as trained | mean SAL, BN recalibrated | ratio | "
             "layers > β (as trained / recalibrated) |", "|---|---:|---:|---:|---:|---:|"]
    clean = _table(root, 0, "fast")
    beta = clean["beta"] if clean else None
    for m in METHODS:
        run = root / "runs" / "seed0" / m
        try:
            plain = {r["epoch"]: r["sal"] for r in load_run(run, sal_tag="early").rows}
            recal = {r["epoch"]: r["sal"] for r in load_run(run, sal_tag="early-bnrecal").rows}
        except UebenchError:
            continue
        for e in sorted(set(plain) & set(recal)):
            a, b = np.array(list(plain[e].values())), np.array(list(recal[e].values()))
            counts = "-" if beta is None else f"{int((a > beta).sum())} / {int((b > beta).sum())}"
            lines.append(f"| {m} | {e} | {a.mean():.4f} | {b.mean():.4f} | "
                         f"{b.mean() / max(a.mean(), 1e-12):.2f} | {counts} |")
    return "\n".join(lines) + "\n"


def epochs_sensitivity(root: Path, seeds: list[int], tag: str) -> str:
    """UD when only the first T epochs had been trained (the same runs, truncated)."""
    lines = ["| epochs T | " + " | ".join(m for m in METHODS[1:]) + " |",
             "|---:|" + "---:|" * (len(METHODS) - 1)]
    for cut in (6, 10, 14, 20):
        cells = []
        for m in METHODS[1:]:
            uds = []
            for s in seeds:
                t = _table(root, s, tag, epochs=cut)
                if t is not None:
                    uds += [r["ud"] for r in t["runs"] if r["name"] == m]
            cells.append(format_summary(summarize(uds), 2) if uds else "-")
        lines.append(f"| {cut} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def pooled_beta(root: Path, seeds: list[int], tag: str) -> str:
    """UD with one β from every clean seed's epochs together (instead of one β per seed)."""
    mids = []
    for s in seeds:
        run = root / "runs" / f"seed{s}" / "clean"
        if (run / "sal" / f"{tag}.jsonl").exists():
            mids += list(epoch_thresholds(sal_matrix(load_run(run, sal_tag=tag).rows)[0]))
    if not mids:
        return "(no clean runs measured yet)\n"
    beta = float(np.mean(mids))
    lines = [f"β pooled over {len(mids)} clean (seed, epoch) thresholds: {beta:.4f}", "",
             "| run | UD per seed (pooled β) | mean ± std [95 % CI] |", "|---|---|---:|"]
    for m in METHODS[1:]:
        uds = []
        for s in seeds:
            try:
                c = sal_matrix(load_run(root / "runs" / f"seed{s}" / "clean", sal_tag=tag).rows)[0]
                p = sal_matrix(load_run(root / "runs" / f"seed{s}" / m, sal_tag=tag).rows)[0]
            except UebenchError:
                continue
            lc = learnable_counts(c, beta).mean()
            uds.append(float(learnable_counts(p, beta).mean() / lc) if lc > 0 else None)
        if uds:
            lines.append(f"| {m} | {', '.join('-' if u is None else f'{u:.2f}' for u in uds)} | "
                         f"{format_summary(summarize(uds), 2)} |")
    return "\n".join(lines) + "\n"


def report(root: Path) -> str:
    root = Path(root)
    seeds = [0, 1, 2]
    parts = [
        "# Reduced-scale Table 1 (ResNet-18 x1/8, CIFAR-10 archive 5k, 20 epochs)\n",
        "## Fast engine, every 2nd epoch, 3 seeds\n", main_table(root, "fast", seeds),
        "## Compat engine (official origin), 1,024-image subset, every 5th epoch, seed 0\n",
        main_table(root, "compat1k", [0]),
        "## Training losses (mean ± std [95 % CI] over seeds)\n", training_losses(root, seeds),
    ]
    fast0 = _table(root, 0, "fast")
    if fast0:
        parts += ["## Which epochs contribute to #LP (fast, seed 0)\n", epochs_contributing(fast0)]
    compat0 = _table(root, 0, "compat1k")
    if compat0:
        parts += ["## Which epochs contribute to #LP (compat, seed 0)\n",
                  epochs_contributing(compat0)]
    parts += ["## Engines on the same snapshots (seed 0)\n", engines_on_late_epochs(root),
              "## BatchNorm statistics lagging the weights (seed 0, early epochs, fast)\n",
              batchnorm_lag(root),
              "## UD vs the number of epochs trained (fast; mean ± std [95 % CI])\n",
              epochs_sensitivity(root, seeds, "fast"),
              "## UD with β pooled over the clean seeds (fast)\n",
              pooled_beta(root, seeds, "fast")]
    text = "\n".join(parts)
    (root / "report.md").write_text(text)
    return text
