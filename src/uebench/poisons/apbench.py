"""APBench (lafeat/apbench) poisons: ``<root>/data/<train_index>.png``, uint8 PNGs of the
poisoned images, exported in exactly that layout and imported from it or from TAP's variant."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from uebench.data.base import ImageSet
from uebench.errors import PoisonValidationError
from uebench.poisons.interop import store_import
from uebench.poisons.manifest import read_manifest
from uebench.poisons.store import load_poisoned
from uebench.utils.io import atomic_write_bytes, write_json

_PIL_MODES = {1: "L", 3: "RGB"}


def export_apbench(poison_dir: Path | str, clean: ImageSet, dest: Path | str) -> Path:
    """Write the poisoned images as ``<dest>/data/<train_index>.png``; returns ``<dest>/data``.

    The manifest is copied to ``<dest>/uebench_manifest.json`` for provenance.
    """
    from PIL import Image

    poisoned = load_poisoned(poison_dir, clean)
    channels = poisoned.image_shape[0]
    if channels not in _PIL_MODES:
        raise PoisonValidationError(f"APBench export needs 1 or 3 channels, got {channels}")
    folder = Path(dest) / "data"
    folder.mkdir(parents=True, exist_ok=True)
    for idx, img in zip(clean.indices.tolist(), poisoned.x):
        arr = img.permute(1, 2, 0).numpy()
        pil = Image.fromarray(arr[:, :, 0] if channels == 1 else arr, mode=_PIL_MODES[channels])
        buf = io.BytesIO()
        pil.save(buf, format="PNG")
        atomic_write_bytes(folder / f"{idx}.png", buf.getvalue())
    write_json(Path(dest) / "uebench_manifest.json", read_manifest(poison_dir))
    return folder


def _read_png(path: Path, mode: str | None, size: tuple[int, int]) -> np.ndarray:
    """One PNG as uint8 H x W (x C), with every way a file can be wrong named."""
    from PIL import Image

    if not path.is_file():
        raise PoisonValidationError(f"{path} is not a file (a directory named .png?)")
    try:
        with Image.open(path) as pil:
            if pil.format != "PNG":
                raise PoisonValidationError(f"{path} is not a PNG (it is {pil.format}); APBench "
                                            "poisons are lossless PNGs")
            if pil.mode != mode or pil.size != size:
                raise PoisonValidationError(
                    f"{path}: a {pil.mode} {pil.size[0]}x{pil.size[1]} image; "
                    f"expected {mode} {size[0]}x{size[1]}")
            return np.asarray(pil, dtype=np.uint8)
    except PoisonValidationError:
        raise  # already names the problem (it is a ValueError: keep it out of the clause below)
    except Image.DecompressionBombError:
        raise PoisonValidationError(f"{path} declares an enormous image (a decompression "
                                    "bomb?); refusing to decode it") from None
    except (Image.UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        why = str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__
        raise PoisonValidationError(f"{path} is not a readable PNG ({why}): truncated or "
                                    "damaged; re-export it") from None


def import_apbench(
    src: Path | str, clean: ImageSet, *, attack: str, dataset: str, out_dir: Path | str,
    norm: str | None = None, eps: float | None = None, preset: str = "imported",
    preview: bool = True, positional: bool = False, seed: int | None = None, force: bool = False,
) -> dict[str, Any]:
    """Import an APBench PNG folder (``<src>/data/<idx>.png`` or ``<src>/<idx>.png``).

    Args:
        src: the folder.
        clean: the clean training (sub)set the poison belongs to.
        positional: APBench names its PNGs by *position* in the set it was given, so a poison
            exported for a subset is ``0.png .. n-1.png``; with ``positional`` file ``k`` is the
            ``k``-th image of ``clean`` (default: file ``<i>`` is train-split index ``i``).
        seed: the subset's seed, recorded in the manifest.
        force: store the poison even if most of it must be clamped to the pixel range.
    Returns the manifest.
    """
    root = Path(src)
    folder = root / "data" if (root / "data").is_dir() else root
    if not folder.is_dir():
        raise PoisonValidationError(f"{root} is not a directory of APBench PNGs")
    c, h, w = clean.image_shape
    names = range(len(clean)) if positional else clean.indices.tolist()
    missing = [idx for idx in names if not (folder / f"{idx}.png").exists()]
    if missing:
        hint = ("" if positional else "; if the files are numbered 0..n-1 by position in an "
                "exported subset, pass --positional")
        raise PoisonValidationError(
            f"{folder}: {len(missing)} of {len(clean)} images have no PNG (e.g. {missing[:5]}); "
            f"load the clean data with the subset the poison was exported for{hint}")
    images = torch.empty_like(clean.x)
    for i, idx in enumerate(names):
        arr = _read_png(folder / f"{idx}.png", _PIL_MODES.get(c), (w, h))
        images[i] = torch.from_numpy(arr.reshape(h, w, c).copy()).permute(2, 0, 1)
    delta = (images.float() - clean.x.float()) / 255.0  # exact after quantization
    extra = {"imported_from": str(root), "import_format": "apbench-png",
             "import_naming": "position" if positional else "train-index", "subset_seed": seed}
    return store_import(delta, clean, attack=attack, dataset=dataset, out_dir=out_dir, norm=norm,
                        eps=eps, preset=preset, extra=extra, preview=preview, force=force)
