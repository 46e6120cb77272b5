"""A poison directory's file names and its manifest: the fields that say what a poison is, their
integrity hash, and reading a manifest checked field by field (the layout is in
:mod:`uebench.poisons.store`)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from uebench.errors import PoisonValidationError, UebenchError
from uebench.utils.io import dumps, read_json

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


def integrity_hash(manifest: dict[str, Any], version: str = INTEGRITY_VERSION) -> str:
    """``"<version>:<sha256>"`` of the manifest's identity fields (:data:`IDENTITY_FIELDS`) as
    canonical strict JSON: the same value whether computed before writing or after reading."""
    fields = {k: manifest.get(k) for k in IDENTITY_FIELDS[version]}
    text = dumps(fields, sort_keys=True, separators=(",", ":"))
    return f"{version}:{hashlib.sha256(text.encode()).hexdigest()}"


def manifest_attack(manifest: dict[str, Any]) -> str:
    """The attack that made a poison (manifests before 0.2 called it ``method``)."""
    return str(manifest.get("attack") or manifest.get("method") or "unknown")


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

