"""Algorithm 1 for multi-task models: clean vs poisoned training with per-task SAL -> UD per task.

For the clean training set and every poison directory, train the same multi-task model from the
same initial weights (``init_seed``) with per-task SAL after every epoch (:mod:`.sal`), then
compute β, #LP and UD per task and the tasks' SAL similarities (:mod:`.report`) and draw the
paper's Fig. 4 (:mod:`.plots`)::

    OUT/runs/clean/, OUT/runs/<name>/   one multi-task run directory each (resumable, reused)
    OUT/results.json|md                 β per task; per run: test metrics, #LP / UD per task,
                                        task similarity per epoch
    OUT/figures/task_similarity.png     Fig. 4a: cosine similarity of tasks' SAL, per run
    OUT/figures/task_learnable.png      Fig. 4b: learnable proportion per task and epoch, UD
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from uebench.errors import UebenchError
from uebench.evaluation import unique_name
from uebench.learnability.sal import SAL_ENGINES, check_engine_options
from uebench.multitask.config import MultiTaskRunCfg
from uebench.multitask.poisons import load_poisoned_multitask
from uebench.multitask.report import multitask_report
from uebench.multitask.run import load_multitask_splits, train_multitask_run
from uebench.poisons.manifest import manifest_attack, read_manifest
from uebench.utils.io import check_output_dir


def poison_name(poison_dir: Path, taken: set[str]) -> str:
    """A readable, unique name for a poison: its attack and, for a task-specific method, the
    tasks it was made for (``em-scene``, ``em-segment+depth``, ``em-all``), else the folder
    name."""
    try:
        manifest = read_manifest(poison_dir)
    except UebenchError:
        base = poison_dir.name
    else:
        base = manifest_attack(manifest)
        params = manifest.get("params") or {}
        if "tasks" in params:
            base += "-" + ("+".join(params["tasks"]) or "all")
    return unique_name(base, taken, allowed="A-Za-z0-9_.+-")  # '+' joins task names


def shared_base(cfg: MultiTaskRunCfg) -> MultiTaskRunCfg:
    """``cfg`` without a poison and with its subset seed pinned (every run: the same images)."""
    subset = cfg.seed if cfg.data.subset_seed is None else cfg.data.subset_seed
    return dataclasses.replace(cfg, poison=None,
                               data=dataclasses.replace(cfg.data, subset_seed=subset))


def named_poisons(cfg: MultiTaskRunCfg, poisons: Sequence[Path]) -> list[tuple[str, Path]]:
    """``(name, path)`` of every poison, each validated against the run's clean images first
    (before any compute is spent on training)."""
    if not poisons:
        raise UebenchError("give at least one poison directory (--poisons DIR ...)")
    clean = load_multitask_splits(cfg).train
    taken: set[str] = set()
    named = []
    for p in poisons:
        load_poisoned_multitask(Path(p), clean)
        named.append((poison_name(Path(p), taken), Path(p).resolve()))
    return named


def evaluate_poisons(cfg: MultiTaskRunCfg, poisons: Sequence[Path], *, out: Path | str,
                     progress: bool = True, figures: bool = True) -> dict[str, Any]:
    """Train clean + poisoned multi-task runs with per-task SAL; write results and Fig. 4.

    Args:
        cfg: the settings every run shares (data, tasks, model, training, SAL engine).
        poisons: poison directories made for the same training images.
        out: output directory (new, empty, or an earlier evaluation to resume).
        progress: progress bars.
        figures: draw Fig. 4a/4b into ``out/figures``.
    """
    base = shared_base(dataclasses.replace(cfg, sal=dataclasses.replace(cfg.sal, enabled=True)))
    SAL_ENGINES.get(base.sal.engine)
    check_engine_options(base.sal.engine, base.sal.options)
    named = named_poisons(base, poisons)
    out = check_output_dir(out, marker="runs", what="a uebench multi-task evaluation")
    splits = load_multitask_splits(base)
    train_multitask_run(base, out / "runs" / "clean", progress=progress, splits=splits)
    dirs = []
    for name, path in named:
        dirs.append(out / "runs" / name)
        train_multitask_run(dataclasses.replace(base, poison=str(path)), dirs[-1],
                            progress=progress, splits=splits)
    result = multitask_report(out / "runs" / "clean", dirs, out_dir=out,
                              notes=[f"seed {base.seed}; same initial weights and images in "
                                     "every run"])
    if figures:
        from uebench.multitask.plots import plot_multitask  # lazy: matplotlib

        result["files"] = plot_multitask(out)["files"]
    return result
