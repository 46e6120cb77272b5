"""The paper's Algorithm 1 as one call: clean vs poisoned training with per-epoch SAL -> UD.

For the clean training set and every poison directory, train the same model from the *same
initial weights* (``init_seed``), measure SAL after every epoch, then compute the Learnable
Threshold beta from the clean run and #LP / UD for every run::

    OUT/runs/<name>/            one complete run directory each (resumable, reused when complete)
    OUT/results.json|md|csv     beta and per run: name, test_acc, lp, ud (null for clean)
    OUT/sal_heatmaps.png        layer x epoch SAL per run (paper Fig. 3/11)
    OUT/learnable_counts.png    learnable layers per epoch with beta (paper Fig. 5/12/13)
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from uebench.config import RunCfg
from uebench.errors import UebenchError
from uebench.poisons.store import load_poisoned, manifest_attack, read_manifest
from uebench.train.run import load_splits, train_run
from uebench.utils.io import check_output_dir


def run_name(poison_dir: Path, taken: set[str]) -> str:
    """A readable, unique run name for a poison directory (its attack, else its folder name)."""
    try:
        base = manifest_attack(read_manifest(poison_dir))
    except UebenchError:
        base = poison_dir.name
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", base) or "poison"
    name, i = base, 2
    while name in taken or name == "clean":
        name, i = f"{base}-{i}", i + 1
    taken.add(name)
    return name


def evaluate(
    cfg: RunCfg,
    poisons: Sequence[Path],
    *,
    out: Path,
    sal_engine: str | None = None,
    sal_origin: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run Algorithm 1 and write the results table and figures into ``out``.

    Args:
        cfg: the run settings shared by every run (dataset, subset, model, training, seed).
        poisons: poison directories made for the same dataset subset (``uebench poison``).
        out: output directory.
        sal_engine: a registered SAL engine; ``None`` keeps ``cfg.sal.engine``.
        sal_origin: ``official`` or ``exact``; ``None`` keeps ``cfg.sal.origin``.
    Returns:
        The results table (as written to ``results.json``).
    """
    from uebench.learnability.report import recompute

    if not poisons:
        raise UebenchError("evaluate needs at least one poison directory (--poisons DIR ...)")
    sal = dataclasses.replace(
        cfg.sal, enabled=True, engine=sal_engine or cfg.sal.engine,
        origin=sal_origin if sal_origin is not None else cfg.sal.origin,
    )
    init_seed = cfg.seed if cfg.init_seed is None else cfg.init_seed
    base = dataclasses.replace(cfg, sal=sal, init_seed=init_seed, poison=None)
    splits = load_splits(base)
    # validate every poison before spending any compute on training
    taken: set[str] = set()
    named = []
    for p in poisons:
        load_poisoned(Path(p), splits.train)
        named.append((run_name(Path(p), taken), Path(p).resolve()))
    out = check_output_dir(out, marker="runs", what="a uebench evaluation")
    runs_dir = out / "runs"
    clean_dir = runs_dir / "clean"
    train_run(base, clean_dir, progress=progress, splits=splits)
    poisoned_dirs = []
    for name, path in named:
        run_dir = runs_dir / name
        train_run(dataclasses.replace(base, poison=str(path)), run_dir, progress=progress,
                  splits=splits)
        poisoned_dirs.append(run_dir)
    return recompute(clean_dir, poisoned_dirs, out_dir=out)
