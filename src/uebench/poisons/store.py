"""Poison store: one directory per poison, exact and safe to load.

Layout (format_version 1)::

    <dir>/poison.safetensors  delta   int16  N x C x H x W  (pixel units: x_poison = x + delta)
                              indices int64  N              (indices into the full train split)
                              labels  int64  N
    <dir>/preview.png         clean / amplified delta / poisoned, one column per class
    <dir>/manifest.json       attack, preset, params, budget, measured norms, fingerprint, ...

Every file is written atomically and ``manifest.json`` last, so a directory that has a manifest
is complete. The perturbation is quantized to integer pixel units so that the declared budget
still holds afterwards (:func:`uebench.poisons.quantize.quantize`), and the measured norms in
the manifest are those of the stored, quantized delta. Loading validates the poison against the
clean data it belongs to and raises :class:`PoisonValidationError` naming the problem and the fix.

The file names and the manifest's checks are in :mod:`uebench.poisons.manifest`, the check of a
poison against its clean data in :mod:`uebench.poisons.validation`. Import/export: APBench PNGs in
:mod:`uebench.poisons.apbench`, ``.npy`` / ``.pt`` arrays in :mod:`uebench.poisons.interop`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from pathlib import Path
from typing import Any

import torch

from uebench.data.base import ImageSet
from uebench.errors import PoisonValidationError
from uebench.poisons.manifest import (
    FORMAT_VERSION,
    MANIFEST,
    PREVIEW,
    TENSORS,
    integrity_hash,
    manifest_attack,
    read_manifest,
)
from uebench.poisons.preview import render_preview
from uebench.poisons.quantize import budget_violation, chunks, measure_pixels, quantize
from uebench.poisons.validation import fingerprint, validate
from uebench.utils.io import atomic_write_bytes, write_json
from uebench.version import __version__


def _quantize_checked(
    clean: ImageSet, delta: torch.Tensor, norm: str | None, eps: float | None, attack: str
) -> tuple[torch.Tensor, dict[str, float], int]:
    """(int16 delta, its measured norms, entries shrunk to keep x + delta in [0, 255])."""
    if tuple(delta.shape) != tuple(clean.x.shape):
        raise PoisonValidationError(
            f"delta shape {tuple(delta.shape)} does not match the clean images "
            f"{tuple(clean.x.shape)}"
        )
    if not torch.isfinite(delta).all():
        raise PoisonValidationError("delta contains NaN/Inf values; the attack or import is broken")
    q, clamped = quantize(delta, clean.x, norm, eps)
    measured = measure_pixels(q)
    problem = budget_violation(measured, norm, eps)
    if problem:  # only possible if the float delta was far outside its own budget (l0)
        raise PoisonValidationError(f"{attack}: {problem} after quantization")
    return q, measured, clamped


def save_poison(
    out_dir: Path | str,
    *,
    clean: ImageSet,
    delta: torch.Tensor,
    attack: str,
    preset: str,
    params: dict[str, Any],
    norm: str | None,
    eps: float | None,
    seed: int | None,
    dataset: str,
    seconds: float,
    preview: bool = True,
    extra: dict[str, Any] | None = None,
    max_clamped_share: float | None = None,
) -> dict[str, Any]:
    """Quantize ``delta`` and write the poison directory; returns the manifest.

    Args:
        out_dir: target directory (created; an existing poison there is replaced).
        clean: the clean training images the delta belongs to (``clean.indices`` are stored).
        delta: float perturbation in [0, 1] units, shaped like ``clean.x``.
        attack, preset, params: the attack's name, preset and resolved hyperparameters.
        norm, eps: the declared budget (norm in linf / l2 / l0 / None, eps in [0, 1] units).
        seed, dataset, seconds: generation seed (None for imports), dataset name, wall time.
        preview: also render ``preview.png``.
        extra: more manifest fields (e.g. an import's source).
        max_clamped_share: refuse (before writing anything) when more than this share of the
            perturbation's nonzero entries must be clamped to keep ``x + delta`` in [0, 255]
            (an import at the wrong scale); ``None``: no limit.
    """
    q, measured, clamped = _quantize_checked(clean, delta, norm, eps, attack)
    if max_clamped_share is not None and clamped:
        _refuse_mostly_clamped(delta, clamped, max_clamped_share)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)  # the directory is incomplete until the new manifest
    blob = _write_tensors(out, clean, q, attack=attack, preview=preview)
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "attack": attack, "preset": preset, "params": dict(params),
        "budget": {"norm": norm, "eps": eps},
        "measured": measured,
        "n": len(clean), "seed": seed, "dataset": dataset,
        "image_shape": list(clean.image_shape), "num_classes": clean.num_classes,
        "fingerprint": fingerprint(clean),
        "range_clamped_entries": clamped,
        "uebench_version": __version__,
        "generation_seconds": float(seconds),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "files": {"tensors": TENSORS, "preview": PREVIEW if preview else None},
        # the stored bytes: verified on every load, and part of a training run's identity
        "sha256": hashlib.sha256(blob).hexdigest(),
        **(extra or {}),
    }
    manifest["integrity"] = integrity_hash(manifest)  # identity fields + sha256, checked on load
    write_json(out / MANIFEST, manifest)
    return manifest


def _refuse_mostly_clamped(delta: torch.Tensor, clamped: int, max_share: float) -> None:
    """Refuse a perturbation of which more than ``max_share`` of the nonzero entries had to be
    clamped to keep ``x + delta`` in [0, 255]: the poison would be clamped pixels."""
    nonzero = sum(int(torch.count_nonzero(delta[part])) for part in chunks(delta.shape[0]))
    share = clamped / max(nonzero, 1)
    if share > max_share:
        raise PoisonValidationError(
            f"{100 * share:.1f}% of the perturbation's nonzero entries ({clamped:,} of "
            f"{nonzero:,}) push pixels outside [0, 255] and would be clamped, so the poison "
            "would be mostly clamped pixels, not this perturbation. Check the array's scale "
            "(float deltas are in [0, 1] units, 8/255 = 0.0314; integer arrays in pixel "
            "units), or pass --force to import it clamped anyway")


def _write_tensors(out: Path, clean: ImageSet, q: torch.Tensor, *, attack: str,
                   preview: bool) -> bytes:
    """Write ``poison.safetensors`` (and ``preview.png``); returns the tensors file's bytes."""
    from safetensors.torch import save as st_save

    tensors = {"delta": q.contiguous(), "indices": clean.indices.to(torch.int64).contiguous(),
               "labels": clean.y.contiguous()}
    blob = st_save(tensors)
    atomic_write_bytes(out / TENSORS, blob)
    if preview:
        png = render_preview(clean.x, q, clean.y, clean.classes, title=attack)
        atomic_write_bytes(out / PREVIEW, png)
    return blob


def content_hash(poison_dir: Path | str) -> str:
    """sha256 of the stored tensors file, streamed (old manifests carry no copy of it)."""
    path = Path(poison_dir) / TENSORS
    if not path.is_file():
        raise PoisonValidationError(f"{Path(poison_dir)} has no {TENSORS}; generate it again")
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_delta(poison_dir: Path | str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(delta int16 N x C x H x W, indices int64, labels int64)`` of a poison directory."""
    d = Path(poison_dir)
    if not (d / TENSORS).is_file():
        raise PoisonValidationError(f"{d} has no {TENSORS}; incomplete poison, generate it again")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    manifest = read_manifest(d)
    expected = manifest.get("sha256")
    if expected is not None and content_hash(d) != expected:
        raise PoisonValidationError(
            f"{d / TENSORS} does not match its manifest (sha256 differs): the file is corrupt, or "
            "was altered or replaced after generation; regenerate or re-import the poison")
    try:
        tensors = load_file(str(d / TENSORS))
    except (SafetensorError, OSError, ValueError) as err:
        raise PoisonValidationError(
            f"{d / TENSORS} is corrupt ({err}); generate the poison again"
        ) from err
    missing = [k for k in ("delta", "indices", "labels") if k not in tensors]
    if missing:
        raise PoisonValidationError(f"{d / TENSORS} lacks {missing}; generate the poison again")
    delta = tensors["delta"]
    for key in ("indices", "labels"):
        if tensors[key].is_floating_point() or tensors[key].is_complex() or \
                tensors[key].dtype == torch.bool or tensors[key].dim() != 1:
            raise PoisonValidationError(
                f"{d / TENSORS}: {key} must be a 1-D integer tensor, got {tensors[key].dtype} "
                f"{tuple(tensors[key].shape)}; regenerate the poison")
    if delta.is_floating_point() and not torch.isfinite(delta).all():
        raise PoisonValidationError(f"{d / TENSORS}: delta contains NaN/Inf; the poison is broken")
    if delta.dtype != torch.int16:
        raise PoisonValidationError(
            f"{d / TENSORS}: delta must be int16 pixel units, got {delta.dtype}; import float "
            "perturbations with uebench.poisons.import_array"
        )
    return delta, tensors["indices"].long(), tensors["labels"].long()


def load_poisoned(poison_dir: Path | str, clean: ImageSet) -> ImageSet:
    """The poisoned training set: ``clean.x + delta`` as uint8, validated against ``clean``."""
    d = Path(poison_dir)
    manifest = read_manifest(d)
    delta, indices, labels = load_delta(d)
    validate(manifest, delta, indices, labels, clean, where=str(d))
    x = torch.empty_like(clean.x)
    for part in chunks(len(clean)):
        x[part] = (clean.x[part].to(torch.int16) + delta[part]).to(torch.uint8)
    meta = dict(clean.meta)
    meta.update(poison_dir=str(d), poison_attack=manifest_attack(manifest),
                poison_preset=manifest.get("preset"))
    return ImageSet(x, clean.y.clone(), clean.classes, clean.name, meta)

