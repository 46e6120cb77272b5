"""Poison import/export API (mirrors ``uebench poison import`` / ``uebench poison export``).

Generation lives with the attacks (:func:`uebench.attacks.generate.generate_poison`): this
package depends only on :mod:`uebench.data`, so training and evaluation can load poisons without
importing any attack (or anything an attack imports).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal

from uebench.data.base import ImageSet, load_dataset
from uebench.errors import UebenchError
from uebench.poisons import apbench, interop, store
from uebench.poisons.manifest import read_manifest
from uebench.utils.io import DirectoryLock, check_output_dir

ImportFormat = Literal["apbench", "array", "images"]


def clean_train_set(
    dataset: str, *, data_dir: str | Path | None, train_size: int | None, seed: int
) -> ImageSet:
    """The clean training subset a poison belongs to (same subset rule as training runs)."""
    return load_dataset(dataset, data_dir=data_dir, train_size=train_size, seed=seed).train


def import_poison(
    src: str | Path,
    *,
    fmt: ImportFormat,
    dataset: str,
    out: Path,
    data_dir: str | Path | None = None,
    train_size: int | None = None,
    seed: int = 0,
    attack: str = "imported",
    norm: str | None = None,
    eps: float | None = None,
    positional: bool = False,
    force: bool = False,
) -> dict[str, Any]:
    """Import a poison made elsewhere (APBench PNG folder, or a raw .npy/.pt array).

    Args:
        src: APBench poison folder (``data/<index>.png``) or a ``.npy``/``.pt`` file.
        fmt: ``apbench``, ``array`` (a perturbation) or ``images`` (poisoned images).
        dataset, data_dir, train_size, seed: the clean (sub)set the poison belongs to.
        out: the new poison directory.
        attack: name recorded in the manifest.
        norm, eps: the declared budget, checked before storing (None: undeclared, and only
            the measured norms are recorded).
        positional: APBench PNGs named by position in an exported subset (``0..n-1.png``).
        force: import even if most of the perturbation must be clamped to the pixel range
            (refused by default: usually a wrong scale).
    Returns:
        The manifest.
    """
    src = Path(src)
    if not src.exists():
        raise UebenchError(f"{src} does not exist")
    check_output_dir(out, marker="manifest.json", what="a uebench poison")
    clean = clean_train_set(dataset, data_dir=data_dir, train_size=train_size, seed=seed)
    if clean.meta.get("order") == "class-sorted":
        warnings.warn(
            f"{dataset} was read from an image-folder copy whose images are sorted by class, "
            "unlike the official batches: another tool's indices and positions refer to the "
            "official order and will not match these images. Import against the official files.",
            stacklevel=2)
    with DirectoryLock(out):
        if fmt == "apbench":
            return apbench.import_apbench(src, clean, attack=attack, dataset=dataset, out_dir=out,
                                          norm=norm, eps=eps, positional=positional, seed=seed,
                                          force=force)
        kind = "images" if fmt == "images" else "delta"
        return interop.import_array(src, clean, attack=attack, dataset=dataset, out_dir=out,
                                    norm=norm, eps=eps, kind=kind, seed=seed, force=force)


def export_poison(poison_dir: Path, dest: Path, *, data_dir: str | Path | None = None) -> Path:
    """Write a stored poison in APBench's layout (``dest/data/<train_index>.png``)."""
    manifest = read_manifest(poison_dir)
    _, indices, _ = store.load_delta(poison_dir)
    full = load_dataset(manifest["dataset"], data_dir=data_dir).train
    clean = full.subset(indices)
    apbench.export_apbench(poison_dir, clean, dest)
    return Path(dest)
