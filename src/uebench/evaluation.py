"""The paper's Algorithm 1 as one call: clean vs poisoned training with per-epoch SAL -> UD.

For the clean training set and every poison directory, train the same model from the *same
initial weights* (``init_seed``), measure SAL after every epoch, then compute the Learnable
Threshold β from the clean run and #LP / UD for every run. With a defense (paper Table 2) the
clean and poisoned runs are trained defended; β and the UD denominator come by default from an
*undefended* clean run, as the paper's Table 2 divides every cell by the undefended vanilla #LP
(``beta_from="defended"`` uses the defended clean run instead). With several seeds (init and data
order; the images, and so the poisons, stay the same) every seed is a complete evaluation and the
top-level table gives mean ± std and a 95 % interval per run::

    OUT/runs/<name>/            one seed: one complete run directory each (resumable, reused)
    OUT/seed<k>/runs/<name>/    several seeds: one evaluation per seed (+ its results.*)
    OUT/results.json|md|csv     β and per run: name, test_acc, lp, ud (null for the β run)
    OUT/sal_heatmaps.png        layer x epoch SAL per run (paper Fig. 3/11; first seed)
    OUT/learnable_counts.png    learnable layers per epoch with β (paper Fig. 5/12/13)
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from uebench.config import RunCfg, canonical, without_poison
from uebench.controls import make_controls
from uebench.errors import UebenchError
from uebench.learnability.aggregate import aggregate_seeds
from uebench.learnability.posthoc import measure_run
from uebench.learnability.report import recompute
from uebench.learnability.sal import SAL_ENGINES, check_engine_options
from uebench.learnability.statistics.ud_bn import BN_TAG
from uebench.poisons.manifest import manifest_attack, read_manifest
from uebench.poisons.store import content_hash, load_poisoned
from uebench.train.partial import refuse_drop
from uebench.train.run import defense_pipeline, load_splits, train_run
from uebench.train.rundir import is_complete
from uebench.utils.io import check_output_dir

BetaFrom = Literal["undefended", "defended"]


def run_name(poison_dir: Path, taken: set[str]) -> str:
    """A readable, unique run name for a poison directory (its attack, else its folder name)."""
    try:
        base = manifest_attack(read_manifest(poison_dir))
    except UebenchError:
        base = poison_dir.name
    return unique_name(base, taken)


def unique_name(base: str, taken: set[str], allowed: str = "A-Za-z0-9_.-") -> str:
    """``base`` made path-safe (other characters -> ``-``) and unique among ``taken`` (which it
    joins); never ``clean``, the clean run's name."""
    base = re.sub(f"[^{allowed}]+", "-", base) or "poison"
    name, i = base, 2
    while name in taken or name == "clean":
        name, i = f"{base}-{i}", i + 1
    taken.add(name)
    return name


def _suffix(defense: str) -> str:
    """Run-name suffix of a defense spec ("" without one): ``em+jpeg``, ``clean+at-eps-4-255``."""
    if defense == "none":
        return ""
    return "+" + (re.sub(r"[^A-Za-z0-9_.-]+", "-", defense).strip("-") or "defended")


def evaluate(
    cfg: RunCfg,
    poisons: Sequence[Path],
    *,
    out: Path,
    seeds: Sequence[int] | None = None,
    beta_from: BetaFrom = "undefended",
    sal_engine: str | None = None,
    sal_origin: str | None = None,
    controls: bool = True,
    recalibrate_bn: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Run Algorithm 1 and write the results table and figures into ``out``.

    Args:
        cfg: the run settings shared by every run (dataset, subset, model, training, defense;
            ``poison_ratio`` and ``poison_mix`` apply to every poison and control alike).
        poisons: poison directories made for the same dataset subset (``uebench poison``).
        out: output directory (new, empty, or an earlier evaluation to resume).
        seeds: several seeds (init + data order, same images); ``None`` = ``[cfg.seed]``.
        beta_from: with a defense, where β and the UD denominator come from.
        sal_engine: a registered SAL engine; ``None`` keeps ``cfg.sal.engine``.
        sal_origin: ``official`` or ``exact``; ``None`` keeps ``cfg.sal.origin``.
        controls: train a random-noise control at each poison's budget next to the poisons
            (generated into ``out/controls``; :mod:`uebench.controls`), read against which
            every statistic of a poison is reported (docs/ud.md).
        recalibrate_bn: keep per-epoch snapshots and, after training, re-measure SAL with
            BatchNorm statistics re-estimated for every epoch's weights (SAL tag ``bn``), which
            the ``ud_bn`` statistic reads; doubles the SAL cost.
    Returns:
        The results table (as written to ``results.json``).
    """
    if not poisons:
        raise UebenchError("evaluate needs at least one poison directory (--poisons DIR ...)")
    if beta_from not in ("undefended", "defended"):
        raise UebenchError(f"beta_from must be 'undefended' or 'defended', got {beta_from!r}")
    refuse_drop(cfg.poison_mix, where="an evaluation", spelled="--poison-mix drop")
    seeds = [cfg.seed] if not seeds else list(dict.fromkeys(int(s) for s in seeds))
    base = _shared_config(cfg, several_seeds=len(seeds) > 1, sal_engine=sal_engine,
                          sal_origin=sal_origin, recalibrate_bn=recalibrate_bn)
    _check_sal(base)
    splits = load_splits(base)
    taken: set[str] = set()
    named = _checked_poisons(poisons, splits, taken)
    out = check_output_dir(out, marker=("runs", f"seed{seeds[0]}", "controls"),
                           what="a uebench evaluation")
    notes = _add_controls(named, taken, out / "controls", base, splits, controls=controls,
                          progress=progress)
    if (base.poison_ratio, base.poison_mix) != (1.0, "replace"):
        notes.append(f"partial poisoning: every poisoned run and control uses poison_ratio "
                     f"{base.poison_ratio:g}, poison_mix {base.poison_mix} (the same images "
                     "for every seed; docs/bench.md, \"Partial and mixed poisoning\")")
    if len(seeds) == 1:
        return _one_seed(base, seeds[0], named, out, splits, beta_from, progress, notes,
                         recalibrate_bn)

    per_seed = [_one_seed(base, s, named, out / f"seed{s}", splits, beta_from, progress, notes,
                          recalibrate_bn) for s in seeds]
    return aggregate_seeds(per_seed, seeds, out)


def _shared_config(cfg: RunCfg, *, several_seeds: bool, sal_engine: str | None,
                   sal_origin: str | None, recalibrate_bn: bool) -> RunCfg:
    """The settings every run of the evaluation shares: SAL on (with the chosen engine and
    origin), no poison, the data subset fixed across seeds, snapshots kept for recalibration."""
    sal = dataclasses.replace(
        cfg.sal, enabled=True, engine=sal_engine or cfg.sal.engine,
        origin=sal_origin if sal_origin is not None else cfg.sal.origin,
    )
    subset = cfg.seed if cfg.data.subset_seed is None else cfg.data.subset_seed
    data = dataclasses.replace(cfg.data, subset_seed=subset) if several_seeds else cfg.data
    train = dataclasses.replace(cfg.train, snapshots=True) if recalibrate_bn else cfg.train
    return canonical(dataclasses.replace(cfg, sal=sal, poison=None, data=data, train=train))


def _checked_poisons(poisons: Sequence[Path], splits: Any, taken: set[str]
                     ) -> list[tuple[str, Path]]:
    """(run name, resolved directory) of every poison, each validated against the clean data
    before any compute is spent on training."""
    _refuse_duplicates(poisons)
    named = []
    for p in poisons:
        load_poisoned(Path(p), splits.train)
        named.append((run_name(Path(p), taken), Path(p).resolve()))
    return named


def _add_controls(named: list[tuple[str, Path]], taken: set[str], folder: Path, base: RunCfg,
                  splits: Any, *, controls: bool, progress: bool) -> list[str]:
    """Generate the random-noise control of every poison into ``folder``, validate each and
    append it to ``named``; returns the notes the results carry about the controls."""
    if not controls:
        return ["no random-noise control (--no-control): the statistics below are not read "
                "against one"]
    made, notes = make_controls([p for _, p in named], folder, data_dir=base.data.data_dir,
                                progress=progress)
    for p in made:
        load_poisoned(p, splits.train)
        named.append((unique_name(p.name, taken), p.resolve()))
    return notes


def _refuse_duplicates(poisons: Sequence[Path]) -> None:
    """The same poison twice (one directory named twice, or two directories with the same stored
    tensors) would train it twice under two names (``ops``, ``ops-2``): refuse, naming both."""
    seen_dirs: dict[Path, Path] = {}
    seen_content: dict[str, Path] = {}
    for p in map(Path, poisons):
        resolved = p.resolve()
        if resolved in seen_dirs:
            raise UebenchError(
                f"--poisons names the same directory twice ({seen_dirs[resolved]} and {p}): give "
                "each poison once")
        seen_dirs[resolved] = p
        digest = read_manifest(p).get("sha256") or content_hash(p)
        if digest in seen_content:
            raise UebenchError(
                f"--poisons {seen_content[digest]} and {p} hold the same poison (identical "
                f"poison.safetensors, sha256 {str(digest)[:12]}...): give each poison once")
        seen_content[digest] = p


def _measure_recalibrated(cfg: RunCfg, runs_dir: Path, progress: bool) -> None:
    """SAL tag ``bn`` of every run of one seed: the run's own engine and options, BatchNorm
    statistics re-estimated per snapshot (resumable; a finished tag is reused)."""
    for run in sorted(p for p in runs_dir.iterdir() if is_complete(p)):
        measure_run(run, tag=BN_TAG, engine=cfg.sal.engine, eps=cfg.sal.eps,
                    origin=cfg.sal.origin, options=cfg.sal.options, recalibrate_bn=True,
                    progress=progress)


def _check_sal(cfg: RunCfg) -> None:
    """Engine name and options are checked before any training (not after the first epoch)."""
    SAL_ENGINES.get(cfg.sal.engine)
    check_engine_options(cfg.sal.engine, cfg.sal.options)


def _one_seed(base: RunCfg, seed: int, named: list[tuple[str, Path]], out: Path, splits: Any,
              beta_from: BetaFrom, progress: bool, extra_notes: Sequence[str] = (),
              recalibrate_bn: bool = False) -> dict[str, Any]:
    # the configured init_seed belongs to the configured seed; every other seed inits from itself
    keep = base.init_seed is not None and seed == base.seed
    cfg = dataclasses.replace(base, seed=seed, init_seed=base.init_seed if keep else seed)
    runs_dir = out / "runs"
    suffix = _suffix(cfg.defense)
    clean_dir = runs_dir / f"clean{suffix}"
    train_run(without_poison(cfg), clean_dir, progress=progress, splits=splits)
    dirs = []
    for name, path in named:
        dirs.append(runs_dir / f"{name}{suffix}")
        train_run(dataclasses.replace(cfg, poison=str(path)), dirs[-1], progress=progress,
                  splits=splits)
    notes = [f"seed {seed} (init and data order)", *extra_notes]
    if recalibrate_bn:
        _measure_recalibrated(cfg, runs_dir, progress)
    if suffix:
        label = defense_pipeline(cfg).describe()
        notes.append(f"defense: {label} (every run below except the β run is defended)")
        if beta_from == "undefended":
            plain = runs_dir / "clean"
            train_run(dataclasses.replace(without_poison(cfg), defense="none"), plain,
                      progress=progress, splits=splits)
            notes.append("β and the UD denominator come from the undefended clean run, as the "
                         "paper's Table 2")
            return recompute(plain, [clean_dir, *dirs], out_dir=out, notes=notes)
        notes.append("β and the UD denominator come from the defended clean run")
    return recompute(clean_dir, dirs, out_dir=out, notes=notes)
