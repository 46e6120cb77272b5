"""Import and export of poisons in other projects' formats (see docs/attacks.md, "Poison store").

- APBench (lafeat/apbench): ``<root>/data/<train_index>.png``, uint8 PNG of the poisoned image
  (TAP's export lacks ``data/``); labels come from the clean dataset. Export writes exactly that
  layout (mode ``L`` for 1-channel data, ``RGB`` for 3-channel), import reads either variant:
  :mod:`uebench.poisons.apbench`.
- Raw arrays, ``.npy`` (``np.load(allow_pickle=False)``) or ``.pt`` (``torch.load(weights_only=
  True)``); never unpickled. ``kind="delta"``: a perturbation, N x C x H x W or N x H x W x C
  (N x H x W for 1-channel data), or class-wise K x ... expanded by label (EM's class-wise
  ``perturbation.pt``); float in [0, 1] units, integers in pixel units (REM's int8 noise), or
  divided by ``scale`` when given. ``kind="images"``: poisoned images (NTGA's ``.npy``), uint8 or
  float in [0, 1]; ``delta = images - clean``.

Imports of both formats are checked (count, shape, NaN/Inf, declared budget) and stored with
:func:`~uebench.poisons.store.save_poison` through :func:`store_import`; unless ``norm``/``eps``
are given the budget is undeclared (``None``) and only the measured norms are recorded.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from uebench.data.base import ImageSet
from uebench.errors import PoisonValidationError
from uebench.poisons.quantize import budget_violation, measure_pixels
from uebench.poisons.store import save_poison

# an import whose perturbation is clamped on more than this share of its nonzero entries is
# refused unless forced: it would store clamped (white/black) pixels, not the perturbation
MAX_CLAMPED_SHARE = 0.5


def import_array(
    path: Path | str, clean: ImageSet, *, attack: str, dataset: str, out_dir: Path | str,
    norm: str | None = None, eps: float | None = None, kind: str = "delta",
    scale: float | None = None, preset: str = "imported", preview: bool = True,
    seed: int | None = None, force: bool = False,
) -> dict[str, Any]:
    """Import a perturbation (``kind="delta"``) or poisoned images (``kind="images"``).

    Args:
        path: a ``.npy`` or ``.pt`` file holding one array (a ``.pt`` dict with one tensor is ok).
        clean: the clean training images the array belongs to (same order).
        attack, dataset, out_dir: recorded in / location of the new poison directory.
        norm, eps: the declared budget, checked before storing (None: undeclared).
        kind: ``delta`` or ``images``.
        scale: deltas are divided by it (default 1 for float arrays, 255 for integer arrays).
        preset: recorded preset name.
        preview: also render ``preview.png``.
        seed: the clean subset's seed, recorded in the manifest.
        force: store the poison even if most of the perturbation must be clamped to the pixel
            range (refused by default: a wrong scale, e.g. pixel units saved as float).
    """
    arr = load_array(path)
    if arr.dtype == torch.bool or arr.is_complex():
        raise PoisonValidationError(f"{path}: a {arr.dtype} array cannot be a perturbation or "
                                    "images; save real numbers (float or integer)")
    if kind == "delta":
        nchw = _to_nchw(arr, clean, classwise=True)
        if nchw.is_floating_point() and not torch.isfinite(nchw).all():
            raise PoisonValidationError(f"{path}: the perturbation contains NaN/Inf values")
        default = 1.0 if nchw.is_floating_point() else 255.0
        delta = nchw.double() / (scale if scale is not None else default)
    elif kind == "images":
        nchw = _to_nchw(arr, clean, classwise=False)
        if nchw.dtype == torch.uint8:
            images = nchw.double() / 255.0
        elif nchw.is_floating_point():
            if not torch.isfinite(nchw).all():
                raise PoisonValidationError(f"{path}: the images contain NaN/Inf values")
            if float(nchw.min()) < -1e-6 or float(nchw.max()) > 1 + 1e-6:
                raise PoisonValidationError(
                    f"{path}: float images must lie in [0, 1] (or pass uint8)"
                )
            images = nchw.double().clamp(0, 1)
        else:
            raise PoisonValidationError(f"{path}: images must be uint8 or float, got {nchw.dtype}")
        delta = images - clean.x.double() / 255.0
    else:
        raise PoisonValidationError(f"kind must be 'delta' or 'images', got {kind!r}")
    extra = {"imported_from": str(path), "import_format": f"array-{kind}", "subset_seed": seed}
    return store_import(delta, clean, attack=attack, dataset=dataset, out_dir=out_dir, norm=norm,
                        eps=eps, preset=preset, extra=extra, preview=preview, force=force)


def load_array(path: Path | str) -> torch.Tensor:
    """One array from ``.npy`` / ``.pt`` without unpickling anything."""
    p = Path(path)
    if not p.exists():
        raise PoisonValidationError(f"{p} does not exist")
    if p.suffix == ".npy":
        _check_npy_size(p)  # before np.load allocates what the header declares
        try:
            arr = np.load(p, allow_pickle=False, max_header_size=10_000)
        except ValueError as err:
            if "object arrays" in str(err).lower():
                raise PoisonValidationError(
                    f"{p} holds pickled Python objects (an object array); refusing to unpickle "
                    "it. Save a plain numeric array instead") from err
            raise PoisonValidationError(f"{p} is not a readable .npy file ({err}); truncated "
                                        "or damaged? re-save it") from None
        except (OSError, EOFError) as err:
            raise PoisonValidationError(f"{p} is not a readable .npy file ({err})") from None
        return torch.from_numpy(np.ascontiguousarray(arr))
    if p.suffix in (".pt", ".pth"):
        try:
            obj = torch.load(p, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError) as err:
            raise PoisonValidationError(
                f"{p} contains pickled objects other than tensors; refusing to unpickle it "
                f"(weights_only load failed: {str(err).splitlines()[0]}). "
                "Save a plain tensor instead"
            ) from err
        if isinstance(obj, dict):
            tensors = [v for v in obj.values() if isinstance(v, torch.Tensor)]
            if len(tensors) != 1:
                raise PoisonValidationError(
                    f"{p}: a dict with keys {sorted(obj)}; expected exactly one tensor"
                )
            obj = tensors[0]
        if not isinstance(obj, torch.Tensor):
            raise PoisonValidationError(f"{p}: expected a tensor, got {type(obj).__name__}")
        return obj.detach().cpu()
    raise PoisonValidationError(
        f"{p}: unsupported file type {p.suffix!r}; use .npy or .pt (convert pickles such as REM's "
        "*.pkl in a trusted environment first)"
    )


def available_memory() -> int | None:
    """Bytes of memory this process could still allocate (Linux: MemAvailable), else None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import os

        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _check_npy_size(p: Path) -> None:
    """Read only the ``.npy`` header and refuse, before anything is allocated, an array the file
    cannot hold (truncated, or a header declaring an enormous shape) or that would not fit in
    memory (a memory bomb: a sparse file of declared terabytes)."""
    from numpy.lib import format as npy

    try:
        with open(p, "rb") as fh:
            version = npy.read_magic(fh)
            read_header = (npy.read_array_header_1_0 if version == (1, 0)
                           else npy.read_array_header_2_0)
            shape, _fortran, dtype = read_header(fh, max_header_size=10_000)
            offset = fh.tell()
    except (ValueError, OSError, EOFError, SyntaxError) as err:
        why = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise PoisonValidationError(f"{p} is not a readable .npy file ({why}); truncated or "
                                    "damaged? re-save it") from None
    if dtype.hasobject:
        return  # np.load refuses object arrays with its own message (no unpickling)
    count = 1
    for dim in shape:
        count *= int(dim)
    declared = count * dtype.itemsize
    held = p.stat().st_size - offset
    if declared > held:
        raise PoisonValidationError(
            f"{p} is not a readable .npy file: its header declares shape {tuple(shape)} "
            f"{dtype} ({declared:,} bytes) but the file holds {held:,} bytes of data; truncated "
            "or damaged? re-save it")
    need = declared + 8 * count  # the array, and the float64 perturbation made from it
    free = available_memory()
    if free is not None and need > free:
        raise PoisonValidationError(
            f"out of memory: {p} declares shape {tuple(shape)} {dtype}, which needs about "
            f"{need / 2**30:.1f} GiB to import but {free / 2**30:.1f} GiB are available; use a "
            "smaller --train-size (an array of that subset), or a machine with more memory")


def _to_nchw(arr: torch.Tensor, clean: ImageSet, *, classwise: bool) -> torch.Tensor:
    """N x C x H x W from NCHW / NHWC / NHW (1 channel), expanding a class-wise K x ... array."""
    c, h, w = clean.image_shape
    if arr.dim() == 3 and c == 1 and tuple(arr.shape[1:]) == (h, w):
        arr = arr[:, None]
    if arr.dim() == 4 and tuple(arr.shape[1:]) == (c, h, w):
        out = arr
    elif arr.dim() == 4 and tuple(arr.shape[1:]) == (h, w, c):
        out = arr.permute(0, 3, 1, 2)
    else:
        raise PoisonValidationError(
            f"array of shape {tuple(arr.shape)} does not fit images {c}x{h}x{w} (NCHW or NHWC)"
        )
    rows = out.shape[0]
    if rows == len(clean):
        return out.contiguous()
    if classwise and rows == clean.num_classes:
        return out[clean.y].contiguous()
    expected = f"{len(clean)}" + (f" (or {clean.num_classes} class-wise)" if classwise else "")
    raise PoisonValidationError(
        f"array has {rows} entries but the clean training set has {expected}; load the clean data "
        "with the subset (--train-size/--seed) the array was made for"
    )


def store_import(delta: torch.Tensor, clean: ImageSet, *, attack: str, dataset: str,
                 out_dir: Path | str, norm: str | None, eps: float | None, preset: str,
                 extra: dict[str, Any], preview: bool, force: bool = False) -> dict[str, Any]:
    """Check an imported ``delta`` against its declared budget and store it (every import format
    ends here); returns the manifest."""
    if (norm is None) != (eps is None) and norm != "l0":
        raise PoisonValidationError("give both norm and eps to declare a budget (or neither)")
    problem = budget_violation(measure_pixels(delta, 1.0), norm, eps)
    what = "the imported poison" if attack == "imported" else f"imported poison {attack!r}"
    if problem:
        raise PoisonValidationError(f"{what}: {problem}; declare the right budget or none")
    seed = extra.pop("subset_seed", None)
    return save_poison(out_dir, clean=clean, delta=delta, attack=attack, preset=preset, params={},
                       norm=norm, eps=eps, seed=seed, dataset=dataset, seconds=0.0, extra=extra,
                       preview=preview, max_clamped_share=None if force else MAX_CLAMPED_SHARE)
