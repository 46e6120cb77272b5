"""Tables of the seed studies (experiments/reduced_table1.py, experiments/ud_uncertainty.py),
regenerated from run directories only. A :class:`Study` names where a seed's run of a method lives;
sections appear as their SAL measurements exist (a study still running gives a partial report).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from uebench.errors import UebenchError
from uebench.learnability.aggregate import aggregate_seeds, markdown
from uebench.learnability.distance import learnable_counts
from uebench.learnability.report import load_run, recompute
from uebench.learnability.stats import format_summary, summarize
from uebench.learnability.threshold import epoch_thresholds, sal_matrix


@dataclass(frozen=True)
class Study:
    """``path(seed, method)`` -> that run's directory; ``methods[0]`` is the clean run."""

    path: Callable[[int, str], Path]
    methods: Sequence[str]
    seeds: Sequence[int]


def _measured(run: Path, tag: str | None) -> bool:
    if not (run / "summary.json").exists():
        return False
    return tag is None or (run / "sal" / f"{tag}.jsonl").exists()


def _runs(study: Study, seed: int, tag: str | None) -> list[Path]:
    return [study.path(seed, m) for m in study.methods if _measured(study.path(seed, m), tag)]


def _table(study: Study, seed: int, tag: str | None, epochs: int | None = None,
           out: Path | None = None) -> dict[str, Any] | None:
    """One seed's UD table (``out``: also its result files and figures), or None while the
    clean run or the tag is missing; ``epochs`` truncates the runs (no files then)."""
    runs = _runs(study, seed, tag)
    if len(runs) < 2 or runs[0] != study.path(seed, study.methods[0]):
        return None
    if epochs is None:
        try:
            return recompute(runs[0], runs[1:], out_dir=out, sal_tag=tag)
        except UebenchError:  # a tag still being measured in some run: no table yet
            return None
    from uebench.learnability.distance import ud_table

    records = [load_run(r, sal_tag=tag, name=m) for r, m in zip(runs, _names(study, runs))]
    cut = [type(r)(r.name, [row for row in r.rows if row["epoch"] <= epochs], r.summary,
                   r.config, r.path) for r in records]
    return ud_table(cut[0], cut[1:])


def figures(study: Study, seed: int, tag: str | None, out: Path) -> list[str]:
    """SAL heat maps and learnable-layer curves of one seed's runs (``recompute`` writes them)."""
    result = _table(study, seed, tag, out=out) or {}
    return [v for v in result.get("files", {}).values() if str(v).endswith(".png")]


def _names(study: Study, runs: Sequence[Path]) -> list[str]:
    by_path = {study.path(0, m).name: m for m in study.methods}
    return [by_path.get(r.name, r.name) for r in runs]


def main_table(study: Study, tag: str | None, seeds: Sequence[int] | None = None) -> str:
    seeds = list(study.seeds if seeds is None else seeds)
    tables = {s: _table(study, s, tag) for s in seeds}
    used = [s for s in seeds if tables[s] is not None]
    if not used:
        return f"(no `{tag}` SAL yet)\n"
    return markdown(aggregate_seeds([tables[s] for s in used], used))


def training_losses(study: Study) -> str:
    lines = ["| run | final train loss | min train loss | final train acc | test acc |",
             "|---|---:|---:|---:|---:|"]
    for m in study.methods:
        finals, mins, accs, tests = [], [], [], []
        for s in study.seeds:
            path = study.path(s, m) / "metrics.jsonl"
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


def engines_on_late_epochs(study: Study, fast_tag: str, compat_tag: str) -> str:
    """fast vs compat SAL on the same snapshots (first seed, epochs both measured)."""
    lines = ["| run | epoch | train loss | median fast/compat | layers fast > compat |",
             "|---|---:|---:|---:|---:|"]
    for m in study.methods:
        run = study.path(study.seeds[0], m)
        try:
            fast = {r["epoch"]: r["sal"] for r in load_run(run, sal_tag=fast_tag).rows}
            compat = {r["epoch"]: r["sal"] for r in load_run(run, sal_tag=compat_tag).rows}
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


def batchnorm_lag(study: Study, beta_tag: str) -> str:
    """Mean SAL per early epoch as trained vs with BatchNorm statistics re-estimated."""
    lines = ["| run | epoch | mean SAL as trained | mean SAL, BN recalibrated | ratio | "
             "layers > β (as trained / recalibrated) |", "|---|---:|---:|---:|---:|---:|"]
    clean = _table(study, study.seeds[0], beta_tag)
    beta = clean["beta"] if clean else None
    for m in study.methods:
        run = study.path(study.seeds[0], m)
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


def epochs_sensitivity(study: Study, tag: str | None, cuts: Sequence[int]) -> str:
    """UD when only the first T epochs had been trained (the same runs, truncated)."""
    lines = ["| epochs T | " + " | ".join(m for m in study.methods[1:]) + " |",
             "|---:|" + "---:|" * (len(study.methods) - 1)]
    for cut in cuts:
        cells = []
        for m in study.methods[1:]:
            uds = []
            for s in study.seeds:
                t = _table(study, s, tag, epochs=cut)
                if t is not None:
                    uds += [r["ud"] for r in t["runs"] if r["name"] == m]
            cells.append(format_summary(summarize(uds), 2) if uds else "-")
        lines.append(f"| {cut} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def pooled_beta(study: Study, tag: str | None) -> str:
    """UD with one β from every clean seed's epochs together (instead of one β per seed)."""
    mids = []
    clean = study.methods[0]
    for s in study.seeds:
        run = study.path(s, clean)
        if _measured(run, tag):
            mids += list(epoch_thresholds(sal_matrix(load_run(run, sal_tag=tag).rows)[0]))
    if not mids:
        return "(no clean runs measured yet)\n"
    beta = float(np.mean(mids))
    lines = [f"β pooled over {len(mids)} clean (seed, epoch) thresholds: {beta:.4f}", "",
             "| run | UD per seed (pooled β) | mean ± std [95 % CI] |", "|---|---|---:|"]
    for m in study.methods[1:]:
        uds = []
        for s in study.seeds:
            try:
                c = sal_matrix(load_run(study.path(s, clean), sal_tag=tag).rows)[0]
                p = sal_matrix(load_run(study.path(s, m), sal_tag=tag).rows)[0]
            except UebenchError:
                continue
            lc = learnable_counts(c, beta).mean()
            uds.append(float(learnable_counts(p, beta).mean() / lc) if lc > 0 else None)
        if uds:
            lines.append(f"| {m} | {', '.join('-' if u is None else f'{u:.2f}' for u in uds)} | "
                         f"{format_summary(summarize(uds), 2)} |")
    return "\n".join(lines) + "\n"


def log_sal_ratio(study: Study, tag: str | None) -> str:
    """A threshold-free distance: mean over epochs and layers of log10(SAL poisoned / SAL clean),
    paired within a seed (same init, same data order); 0 = as learnable as clean."""
    lines = ["| run | per seed | mean ± std [95 % CI] |", "|---|---|---:|"]
    clean = study.methods[0]
    for m in study.methods[1:]:
        vals = []
        for s in study.seeds:
            try:
                c, layers = sal_matrix(load_run(study.path(s, clean), sal_tag=tag).rows)
                p, _ = sal_matrix(load_run(study.path(s, m), sal_tag=tag).rows, layers)
            except UebenchError:
                continue
            n = min(len(c), len(p))
            vals.append(float(np.mean(np.log10(np.maximum(p[:n], 1e-12)
                                               / np.maximum(c[:n], 1e-12)))))
        if vals:
            lines.append(f"| {m} | {', '.join(f'{v:+.2f}' for v in vals)} | "
                         f"{format_summary(summarize(vals), 2)} |")
    return "\n".join(lines) + "\n"
