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

Import/export (APBench PNGs, ``.npy`` / ``.pt`` arrays): :mod:`uebench.poisons.interop`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from pathlib import Path
from typing import Any

import torch

from uebench.data.base import ImageSet
from uebench.errors import PoisonValidationError, UebenchError
from uebench.poisons.preview import render_preview
from uebench.poisons.quantize import (
    budget_violation,
    chunks,
    measure_pixels,
    quantize,
    range_extremes,
)
from uebench.utils.io import atomic_write_bytes, dumps, read_json, write_json
from uebench.version import __version__

FORMAT_VERSION = 1
TENSORS, MANIFEST, PREVIEW = "poison.safetensors", "manifest.json", "preview.png"
NORMS = ("linf", "l2", "l0")

# The manifest fields that say what a poison *is*: covered, with the tensors' sha256, by the
# manifest's ``integrity`` hash ("v1:<sha256>"), so that an edit (OPS data relabelled ``em``, a
# changed budget) is refused on load. Versioned: a later uebench may cover more fields under
# "v2" and still verify "v1" manifests. Manifests written before the hash existed carry no
# ``integrity`` field and load as before (their tensors are still checked against ``sha256``).
IDENTITY_FIELDS = {"v1": ("format_version", "attack", "method", "preset", "params", "budget",
                          "dataset", "n", "seed", "image_shape", "num_classes", "fingerprint",
                          "sha256", "multitask")}
INTEGRITY_VERSION = "v1"


def fingerprint(clean: ImageSet) -> str:
    """sha256 of the clean images' bytes followed by the labels' bytes (int64)."""
    digest = hashlib.sha256(clean.x.contiguous().numpy())  # the buffer itself, no copy
    digest.update(clean.y.contiguous().numpy())
    return "sha256:" + digest.hexdigest()


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
        nonzero = sum(int(torch.count_nonzero(delta[part])) for part in chunks(delta.shape[0]))
        share = clamped / max(nonzero, 1)
        if share > max_clamped_share:
            raise PoisonValidationError(
                f"{100 * share:.1f}% of the perturbation's nonzero entries ({clamped:,} of "
                f"{nonzero:,}) push pixels outside [0, 255] and would be clamped, so the poison "
                "would be mostly clamped pixels, not this perturbation. Check the array's scale "
                "(float deltas are in [0, 1] units, 8/255 = 0.0314; integer arrays in pixel "
                "units), or pass --force to import it clamped anyway")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)  # the directory is incomplete until the new manifest
    from safetensors.torch import save as st_save

    tensors = {"delta": q.contiguous(), "indices": clean.indices.to(torch.int64).contiguous(),
               "labels": clean.y.contiguous()}
    blob = st_save(tensors)
    atomic_write_bytes(out / TENSORS, blob)
    if preview:
        png = render_preview(clean.x, q, clean.y, clean.classes, title=attack)
        atomic_write_bytes(out / PREVIEW, png)
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


def integrity_hash(manifest: dict[str, Any], version: str = INTEGRITY_VERSION) -> str:
    """``"<version>:<sha256>"`` of the manifest's identity fields (:data:`IDENTITY_FIELDS`) as
    canonical strict JSON: the same value whether computed before writing or after reading."""
    fields = {k: manifest.get(k) for k in IDENTITY_FIELDS[version]}
    text = dumps(fields, sort_keys=True, separators=(",", ":"))
    return f"{version}:{hashlib.sha256(text.encode()).hexdigest()}"


def manifest_attack(manifest: dict[str, Any]) -> str:
    """The attack that made a poison (manifests before 0.2 called it ``method``)."""
    return str(manifest.get("attack") or manifest.get("method") or "unknown")


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


_MANIFEST_TYPES = {"n": int, "dataset": str, "budget": dict, "measured": dict,
                   "fingerprint": str, "format_version": int}


def read_manifest(poison_dir: Path | str) -> dict[str, Any]:
    """The manifest of a complete poison directory, checked for the fields loading needs."""
    d = Path(poison_dir)
    if not d.is_dir():
        raise PoisonValidationError(
            f"poison directory {d} does not exist; make it with `uebench poison generate`")
    if not (d / MANIFEST).is_file():
        raise PoisonValidationError(
            f"{d} has no {MANIFEST}: the generation did not finish (or this is not a poison "
            "directory); generate it again"
        )
    try:
        manifest = read_json(d / MANIFEST)
    except UebenchError as exc:
        raise PoisonValidationError(f"{exc} (or regenerate the poison)") from None
    if not isinstance(manifest, dict):
        raise PoisonValidationError(f"{d / MANIFEST} is corrupt (not a JSON object); regenerate")
    bad = [k for k, tp in _MANIFEST_TYPES.items() if not isinstance(manifest.get(k), tp)]
    if bad:
        raise PoisonValidationError(
            f"{d / MANIFEST} is corrupt: missing or mistyped field(s) {bad}; regenerate the poison")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise PoisonValidationError(
            f"{d / MANIFEST}: format_version {manifest.get('format_version')!r} is not supported "
            f"(expected {FORMAT_VERSION}); regenerate the poison with this uebench version"
        )
    _check_budget(manifest["budget"], d / MANIFEST)
    _check_integrity(manifest, d / MANIFEST)
    return manifest


def _check_budget(budget: dict[str, Any], where: Path) -> None:
    """``budget.norm`` is one of :data:`NORMS` or null, ``budget.eps`` a finite number >= 0 or
    null: a hand-edited value gets a message naming the field instead of a traceback later."""
    import math

    norm, eps = budget.get("norm"), budget.get("eps")
    if norm is not None and norm not in NORMS:
        raise PoisonValidationError(
            f"{where}: budget.norm must be one of {', '.join(NORMS)} or null, got {norm!r}; "
            "restore the manifest, or regenerate / re-import the poison")
    if eps is not None and (isinstance(eps, bool) or not isinstance(eps, (int, float))
                            or not math.isfinite(eps) or eps < 0):
        raise PoisonValidationError(
            f"{where}: budget.eps must be a finite number >= 0 (in [0, 1] pixel units, e.g. "
            f"0.0314 for 8/255) or null, got {eps!r}; restore the manifest, or regenerate / "
            "re-import the poison")


def _check_integrity(manifest: dict[str, Any], where: Path) -> None:
    """The manifest's identity fields (attack, params, budget, ...) are those it was written
    with. A manifest without ``integrity`` predates the hash and is accepted unverified."""
    stated = manifest.get("integrity")
    if stated is None:
        return
    version = stated.split(":", 1)[0] if isinstance(stated, str) else None
    if version not in IDENTITY_FIELDS:
        raise PoisonValidationError(
            f"{where}: integrity {stated!r} is not a hash this uebench knows (versions "
            f"{', '.join(IDENTITY_FIELDS)}); the manifest was edited or made by a newer uebench: "
            "regenerate / re-import the poison")
    if integrity_hash(manifest, version) != stated:
        raise PoisonValidationError(
            f"{where} was edited after the poison was made: its identity fields (attack "
            f"{manifest_attack(manifest)!r}, preset, params, budget, dataset, ...) no longer "
            "match its integrity hash. A poison's attack, parameters and budget cannot be "
            "changed by editing: restore the original manifest, or regenerate / re-import the "
            "poison (uebench poison import --attack NAME --norm N --eps E)")


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
