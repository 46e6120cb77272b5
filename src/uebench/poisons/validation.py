"""The clean data's fingerprint, and the check of a stored poison against the clean data it
belongs to (size, subset, labels, images, budget, pixel range)."""

from __future__ import annotations

import hashlib
from typing import Any

import torch

from uebench.data.base import ImageSet
from uebench.errors import PoisonValidationError
from uebench.poisons.quantize import budget_violation, measure_pixels, range_extremes


def fingerprint(clean: ImageSet) -> str:
    """sha256 of the clean images' bytes followed by the labels' bytes (int64)."""
    digest = hashlib.sha256(clean.x.contiguous().numpy())  # the buffer itself, no copy
    digest.update(clean.y.contiguous().numpy())
    return "sha256:" + digest.hexdigest()

def validate(manifest: dict[str, Any], delta: torch.Tensor, indices: torch.Tensor,
             labels: torch.Tensor, clean: ImageSet, *, where: str = "poison") -> None:
    """Check a stored poison against its clean data; raise on the first problem."""
    n = manifest.get("n")
    if delta.shape[0] != len(clean) or indices.shape[0] != delta.shape[0] or n != delta.shape[0]:
        raise PoisonValidationError(
            f"{where}: the poison has {delta.shape[0]} images (manifest n={n}) but the clean "
            f"training set has {len(clean)}. Load the clean data as at generation: dataset "
            f"{manifest.get('dataset')!r}, --train-size {n}, --seed {manifest.get('seed')}"
        )
    if tuple(delta.shape[1:]) != clean.image_shape:
        raise PoisonValidationError(
            f"{where}: poison images are {tuple(delta.shape[1:])}, clean images "
            f"{clean.image_shape}; the poison belongs to dataset {manifest.get('dataset')!r}"
        )
    if not torch.equal(indices, clean.indices.long()):
        raise PoisonValidationError(
            f"{where}: the poison covers a different subset of the train split (indices differ). "
            f"Load {manifest.get('dataset')!r} with --train-size {n} and the seed used at "
            f"generation (--seed {manifest.get('seed')})"
        )
    if not torch.equal(labels, clean.y):
        raise PoisonValidationError(
            f"{where}: stored labels differ from the clean labels; wrong dataset?"
        )
    if manifest.get("fingerprint") != fingerprint(clean):
        raise PoisonValidationError(
            f"{where}: the clean images differ from those the poison was made from (fingerprint "
            f"mismatch): use the same dataset files ({manifest.get('dataset')!r}) or regenerate"
        )
    budget = manifest.get("budget") or {}
    measured = measure_pixels(delta)
    problem = budget_violation(measured, budget.get("norm"), budget.get("eps"))
    if problem:
        raise PoisonValidationError(
            f"{where}: budget violated: {problem}; the file was altered, regenerate"
        )
    stated = manifest.get("measured") or {}
    off = [k for k, v in measured.items()
           if not isinstance(stated.get(k), (int, float)) or abs(stated[k] - v) > 1e-6]
    if off:
        raise PoisonValidationError(
            f"{where}: the stored perturbation's norms {sorted(off)} differ from the manifest's; "
            "the files were altered, regenerate")
    low, high = range_extremes(clean.x, delta)
    if low < 0 or high > 255:
        raise PoisonValidationError(
            f"{where}: x + delta leaves the pixel range [0, 255] ({low}..{high}); the file was "
            "altered, regenerate"
        )
