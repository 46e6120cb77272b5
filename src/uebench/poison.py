"""Poison API (mirrors ``uebench poison``): generate, import and export unlearnable datasets."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import torch

from uebench.data.base import ImageSet, load_dataset
from uebench.errors import UebenchError
from uebench.runtime import Runtime, default_device


def _runtime(device: str | None, seed: int, progress: bool) -> Runtime:
    dev = default_device() if device in (None, "auto") else torch.device(device)
    return Runtime(device=dev, seed=seed, progress=progress)


def clean_train_set(
    dataset: str, *, data_dir: str | Path | None, train_size: int | None, seed: int
) -> ImageSet:
    """The clean training subset a poison is made for (same subset rule as training runs)."""
    return load_dataset(dataset, data_dir=data_dir, train_size=train_size, seed=seed).train


def generate_poison(
    method: str,
    *,
    dataset: str,
    out: Path,
    data_dir: str | Path | None = None,
    train_size: int | None = None,
    seed: int = 0,
    preset: str = "original",
    params: dict[str, Any] | None = None,
    device: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate a poison for a dataset's (sub)training set and write it to ``out``.

    Long generations checkpoint into ``out/.work`` and resume from there when re-run.
    Returns the manifest.
    """
    from uebench.attacks.base import (
        attack_info,
        fill_shape_defaults,
        resolve_params,
        run_attack,
    )
    from uebench.attacks.store import read_manifest, save_poison

    out = Path(out)
    info = attack_info(method)  # unknown names fail before any data is loaded
    resolved = resolve_params(method, preset, params)
    clean = clean_train_set(dataset, data_dir=data_dir, train_size=train_size, seed=seed)
    resolved = fill_shape_defaults(method, resolved, clean.image_shape)
    if (out / "manifest.json").exists():
        manifest = read_manifest(out)
        same = (
            manifest.get("method") == method
            and manifest.get("preset") == preset
            and manifest.get("seed") == seed
            and manifest.get("dataset") == dataset
            and manifest.get("n") == len(clean)
            and manifest.get("params") == json_ready(resolved)
        )
        if same:
            return manifest
        raise UebenchError(
            f"{out} already holds a different poison ({manifest.get('method')}); "
            "choose another --out or delete it"
        )
    rt = _runtime(device, seed, progress)
    workdir = out / ".work"
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    delta, resolved = run_attack(
        method,
        clean.x,
        clean.y,
        num_classes=clean.num_classes,
        rt=rt,
        preset=preset,
        params=params,
        workdir=workdir,
    )
    seconds = time.perf_counter() - t0
    eps = resolved.get(info.eps_param) if info.eps_param else None
    manifest = save_poison(
        out,
        clean=clean,
        delta=delta.cpu(),
        method=method,
        preset=preset,
        params=json_ready(resolved),
        norm=info.norm_for(resolved),
        eps=eps,
        seed=seed,
        dataset=dataset,
        seconds=seconds,
    )
    shutil.rmtree(workdir, ignore_errors=True)
    return manifest


def json_ready(params: dict[str, Any]) -> dict[str, Any]:
    import json

    return json.loads(json.dumps(params, default=str))


def import_poison(
    src: str | Path,
    *,
    fmt: str,
    dataset: str,
    out: Path,
    data_dir: str | Path | None = None,
    train_size: int | None = None,
    seed: int = 0,
    method: str = "imported",
    norm: str | None = None,
    eps: float | None = None,
) -> dict[str, Any]:
    """Import a poison made elsewhere (APBench PNG folder, or a raw .npy/.pt array)."""
    from uebench.attacks import interop

    src = Path(src)
    if not src.exists():
        raise UebenchError(f"{src} does not exist")
    clean = clean_train_set(dataset, data_dir=data_dir, train_size=train_size, seed=seed)
    if fmt == "apbench":
        return interop.import_apbench(
            src, clean, method=method, dataset=dataset, out_dir=out, norm=norm, eps=eps
        )
    kind = "images" if fmt == "images" else "delta"
    return interop.import_array(
        src, clean, method=method, dataset=dataset, out_dir=out, norm=norm, eps=eps, kind=kind
    )


def export_poison(poison_dir: Path, dest: Path, *, data_dir: str | Path | None = None) -> Path:
    """Write a stored poison in APBench's layout (``dest/data/<train_index>.png``)."""
    from uebench.attacks import interop, store

    manifest = store.read_manifest(poison_dir)
    _, indices, _ = store.load_delta(poison_dir)
    full = load_dataset(manifest["dataset"], data_dir=data_dir).train
    clean = full.subset(indices)
    interop.export_apbench(poison_dir, clean, dest)
    return Path(dest)
