"""What ``uebench detect`` runs on: the dataset or poison directory that DATA names, the
candidate set loaded from it, and the clean reference subsets it is read against."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from uebench.data.base import DATASETS, ImageSet, load_dataset, stratified_subset
from uebench.errors import PoisonValidationError, UebenchError
from uebench.poisons.manifest import MANIFEST, manifest_attack, read_manifest
from uebench.poisons.store import load_poisoned
from uebench.runtime import derive_seed

REFERENCE_STREAM = 9100  # seed stream of the reference subsets and the detectors' seeds


@dataclass(frozen=True)
class Target:
    """What ``uebench detect DATA [--poison DIR]`` resolves to."""

    dataset: str
    train_size: int | None
    seed: int
    poison: Path | None


def resolve_target(data: str | Path, *, poison: str | Path | None, train_size: int | None,
                   seed: int | None) -> Target:
    """DATA is a dataset name, or a poison directory (its manifest gives dataset, size and seed).

    With a poison, a size or seed left out is the poison's. Refuses a DATA that is neither, and a
    ``--poison`` made for another dataset (another subset is refused when it is loaded).
    """
    text, path = str(data), Path(data)
    if text in DATASETS:
        if poison is None:
            return Target(text, train_size, 0 if seed is None else seed, None)
        return _poison_target(Path(poison), text, train_size, seed)
    if not path.exists():
        raise UebenchError(
            f"{text!r} is neither a dataset ({', '.join(DATASETS.names())}) nor a poison "
            "directory: pass a dataset name, e.g. `uebench detect fashion-mnist --train-size "
            "2000`, or a directory made by `uebench poison generate`")
    if not (path.is_dir() and (path / MANIFEST).is_file()):
        raise UebenchError(
            f"{path} is neither a dataset name nor a poison directory (it has no {MANIFEST}): "
            f"pass a dataset name ({', '.join(DATASETS.names())}; files of one go with "
            "--data-dir DIR), or a directory made by `uebench poison generate`")
    if poison is not None:
        raise UebenchError(f"DATA {path} is already a poison directory: give the poison either "
                           "as DATA or as --poison with the dataset name as DATA")
    return _poison_target(path, None, train_size, seed)


def _poison_target(poison: Path, dataset: str | None, train_size: int | None,
                   seed: int | None) -> Target:
    manifest = read_manifest(poison)  # not a poison: the message says so and how to make one
    made = (manifest["dataset"], manifest["n"], manifest.get("seed") or 0)
    if dataset is not None and made[0] != dataset:
        raise PoisonValidationError(
            f"{poison} was made for dataset {made[0]!r} ({made[1]} images, subset seed "
            f"{made[2]}), not {dataset!r}: run `uebench detect {made[0]} --train-size {made[1]} "
            f"--seed {made[2]} --poison {poison}` (or `uebench detect {poison}`)")
    # what is left out comes from the manifest; what is given must match it (load_poisoned
    # refuses another subset and names the flags to pass)
    return Target(made[0], made[1] if train_size is None else train_size,
                  made[2] if seed is None else seed, poison)

def reference_indices(y: torch.Tensor, taken: torch.Tensor, *, seed: int,
                      count: int) -> list[torch.Tensor]:
    """``count`` index sets into a split with labels ``y``, each with the class counts of
    ``taken``, drawn with seeds derived from ``seed``: disjoint from ``taken`` and from each other
    while the unused images of every class suffice, else drawn from the whole split."""
    want = torch.bincount(y[taken], minlength=int(y.max()) + 1)
    used = torch.zeros(len(y), dtype=torch.bool)
    used[taken] = True
    out = []
    for k in range(count):
        rng = np.random.default_rng(derive_seed(seed, REFERENCE_STREAM, 100 + k))
        free = all(int((~used & (y == c)).sum()) >= int(m) for c, m in enumerate(want))
        picks = []
        for c, m in enumerate(want.tolist()):
            pool = torch.nonzero((y == c) & ~used if free else (y == c)).flatten().numpy()
            picks.append(rng.choice(pool, size=m, replace=False))
        pick = torch.from_numpy(np.sort(np.concatenate(picks))).long()
        used[pick] = True
        out.append(pick)
    return out



@dataclass(frozen=True)
class TargetSets:
    """The sets a target is read on: the candidate, its clean references and what they share."""

    candidate: ImageSet
    references: list[ImageSet]
    reference_overlap: list[float]  # per reference, the share of its images in the candidate's
    attack: str | None  # the poison's attack (None for a clean candidate)


def load_target_sets(target: Target, *, data_dir: str | Path | None,
                     references: int) -> TargetSets:
    """The candidate (the target's subset, poisoned when the target has a poison) and
    ``references`` clean reference subsets of the same size and class counts."""
    full = load_dataset(target.dataset, data_dir=data_dir).train
    if target.train_size is not None and target.train_size > len(full):
        raise UebenchError(f"--train-size {target.train_size} is larger than {target.dataset}'s "
                           f"training split ({len(full)} images)")
    if target.train_size is not None and target.train_size < len(full):
        taken = stratified_subset(full.y, target.train_size, target.seed)
    else:
        taken = torch.arange(len(full))
    clean = full.subset(taken)
    attack = None
    if target.poison is not None:
        candidate = load_poisoned(target.poison, clean)  # refuses another subset, names the fix
        attack = manifest_attack(read_manifest(target.poison))
    else:
        candidate = clean
    picks = reference_indices(full.y, taken, seed=target.seed, count=references)
    overlap = [float(np.isin(p.numpy(), taken.numpy()).mean()) for p in picks]
    return TargetSets(candidate, [full.subset(p) for p in picks], overlap, attack)
