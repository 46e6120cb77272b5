"""Partial and mixed poisoning: which images of a run take their poisoned version, the training
set that results, and the record of it a run directory keeps (``poisoned_indices.json``)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from uebench.config import RunCfg
from uebench.data.base import ImageSet, stratified_subset
from uebench.errors import UebenchError
from uebench.runtime import derive_seed
from uebench.train import rundir


def data_seed(cfg: RunCfg) -> int:
    """The seed of the run's clean images: ``data.subset_seed``, else the run's seed."""
    return cfg.seed if cfg.data.subset_seed is None else cfg.data.subset_seed


# The protected subset's random stream. It is drawn from the seed of the clean images
# (data_seed), never from the run's seed: the subset is a property of the protected data, so every
# training seed of a setting sees the same protected images, and so does the poison's random-noise
# control (same images, same subset), which its statistics are read against.
PROTECTED_STREAM = 0x70726F74


def is_partial(cfg: RunCfg) -> bool:
    """Whether the run poisons only part of its images, or adds them beside the clean ones."""
    return cfg.poison is not None and (cfg.poison_ratio != 1 or cfg.poison_mix != "replace")


def protected_count(n: int, ratio: float) -> int:
    """How many of ``n`` images take their poisoned version at share ``ratio`` (half up)."""
    return min(n, math.floor(ratio * n + 0.5))


def training_images(n: int, ratio: float, mix: str) -> int:
    """The size of the training set a run of ``n`` clean images trains on: ``n`` (replace),
    ``n`` + the protected images (add), or the clean part alone (drop)."""
    k = protected_count(n, ratio)
    return n + k if mix == "add" else n - k if mix == "drop" else n


def poisoned_indices(cfg: RunCfg, clean: ImageSet) -> torch.Tensor:
    """Sorted indices (into ``clean``) of the images that take their poisoned version:
    ``round(poison_ratio * N)`` of the N, a class-stratified subset (every class protected in
    the same share) seeded by :data:`PROTECTED_STREAM`; all of them at ratio 1."""
    n = len(clean)
    k = protected_count(n, cfg.poison_ratio)
    if k >= n:
        return torch.arange(n)
    if k == 0:
        return torch.zeros(0, dtype=torch.long)
    return stratified_subset(clean.y, k, derive_seed(data_seed(cfg), PROTECTED_STREAM))


def mix_poison(cfg: RunCfg, clean: ImageSet, poisoned: ImageSet) -> ImageSet:
    """The training set of ``cfg.poison_ratio`` and ``cfg.poison_mix`` (docs/bench.md, "Partial
    and mixed poisoning"), from the clean set and its fully poisoned version (same N images):

    - ``replace``: N images; those of :func:`poisoned_indices` poisoned, the rest clean;
    - ``add``: N + k images; the N clean ones first, then the k poisoned copies, in index order;
    - ``drop``: N - k images; the clean images outside the protected subset, in index order (the
      clean part alone: what training without the protected images learns).

    At ratio 1 with ``replace`` it is ``poisoned`` itself, untouched (runs made before these
    settings existed train exactly as they did).
    """
    if not is_partial(cfg):
        return poisoned
    idx = poisoned_indices(cfg, clean)
    meta = {**poisoned.meta, "poison_ratio": cfg.poison_ratio, "poison_mix": cfg.poison_mix,
            "n_poisoned": len(idx)}
    if cfg.poison_mix == "replace":
        x = clean.x.clone()
        x[idx] = poisoned.x[idx]
        return ImageSet(x, clean.y.clone(), clean.classes, clean.name, meta)
    if cfg.poison_mix == "drop":
        keep = torch.ones(len(clean), dtype=torch.bool)
        keep[idx] = False
        kept = clean.subset(torch.nonzero(keep).flatten())  # its indices: positions in the split
        return ImageSet(kept.x, kept.y, clean.classes, clean.name,
                        {**meta, "indices": kept.indices})
    meta["indices"] = torch.cat([clean.indices, clean.indices[idx]])  # positions in the split
    return ImageSet(torch.cat([clean.x, poisoned.x[idx]]), torch.cat([clean.y, clean.y[idx]]),
                    clean.classes, clean.name, meta)


def poisoned_record(cfg: RunCfg, clean: ImageSet) -> dict[str, Any]:
    """What ``RUN/poisoned_indices.json`` holds for a partially or mixed poisoned run."""
    return {"poison_ratio": cfg.poison_ratio, "poison_mix": cfg.poison_mix,
            "seed": derive_seed(data_seed(cfg), PROTECTED_STREAM), "n_clean": len(clean),
            "indices": poisoned_indices(cfg, clean).tolist()}


def refuse_drop(mix: str, *, where: str, spelled: str) -> None:
    """Refuse ``drop`` where every poison is compared with its control (``evaluate``, ``check``):
    with the protected images left out, they would all train on the same clean part."""
    if mix == "drop":
        raise UebenchError(
            f"{spelled} leaves the protected images out, so every poison and control of {where} "
            "would train on the same clean part: train that baseline once with uebench train "
            "--poison P --poison-ratio R --poison-mix drop, or as a grid's drop twin "
            "(docs/bench.md, \"Partial and mixed poisoning\")")


def check_poisoned(cfg: RunCfg, out: Path, clean_set: Callable[[], ImageSet]) -> None:
    """A run directory's stored poisoned indices are the ones its config gives (on resume and
    reuse): an edited file, or one of other data, is refused before it is trained on or reused.
    ``clean_set()`` gives the run's clean training set (loaded only when there is a file to
    check)."""
    stored = rundir.read_poisoned_indices(out)
    if stored is None and not is_partial(cfg):
        return
    path = out / rundir.POISONED
    fix = "delete the run directory to retrain (or use another --out)"
    if stored is None:
        if rundir.is_complete(out):
            raise rundir.RunError(f"{out} is a finished partially poisoned run without "
                                  f"{rundir.POISONED}, so which images were poisoned is unknown: "
                                  f"{fix}")
        return  # interrupted before it was written: training writes it again
    clean = clean_set()
    if stored.get("n_clean") != len(clean):
        raise rundir.RunError(f"{path} was written for {stored.get('n_clean')} training images "
                              f"but this run's set has {len(clean)}: {fix}")
    if not is_partial(cfg) or stored != poisoned_record(cfg, clean):
        k = len(poisoned_indices(cfg, clean))
        raise rundir.RunError(
            f"{path} does not list the images this config poisons (poison_ratio "
            f"{cfg.poison_ratio:g}, poison_mix {cfg.poison_mix}: {k} images): the file was edited "
            f"or belongs to other settings; {fix}")
