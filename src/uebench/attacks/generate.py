"""Poison generation API (mirrors ``uebench poison``): run an attack on a dataset's (sub)training
set and write the result to the poison store (:mod:`uebench.poisons`)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from uebench.poisons.api import clean_train_set
from uebench.runtime import Runtime, default_device
from uebench.utils.io import atomic_write_text, refuse_if_different


def json_ready(params: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(params, default=str))


def make_runtime(device: str | None, seed: int, progress: bool) -> Runtime:
    dev = default_device() if device in (None, "auto") else torch.device(device)
    return Runtime(device=dev, seed=seed, progress=progress)


def generate_poison(
    attack: str,
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

    Every parameter is checked before any data is loaded. Long generations checkpoint into
    ``out/.work`` and resume from there when re-run; ``generation_seconds`` adds up the time of
    every session. A complete poison with the same settings is reused; a different one in ``out``
    is refused. Returns the manifest.
    """
    from uebench.attacks.base import attack_info, fill_shape_defaults, resolve_params, run_attack
    from uebench.poisons.store import manifest_attack, read_manifest, save_poison

    out = Path(out)
    info = attack_info(attack)  # unknown names and bad parameters fail before any data loads
    resolved = resolve_params(attack, preset, params)
    clean = clean_train_set(dataset, data_dir=data_dir, train_size=train_size, seed=seed)
    resolved = fill_shape_defaults(attack, resolved, clean.image_shape)
    identity = {"attack": attack, "preset": preset, "seed": seed, "dataset": dataset,
                "n": len(clean), "params": json_ready(resolved)}
    if (out / "manifest.json").exists():
        manifest = read_manifest(out)
        old = {**{k: manifest.get(k) for k in identity}, "attack": manifest_attack(manifest)}
        refuse_if_different(out, old, identity, what="a poison",
                            fix="Choose another --out, or delete that directory to regenerate.")
        return manifest
    rt = make_runtime(device, seed, progress)
    workdir = out / ".work"
    workdir.mkdir(parents=True, exist_ok=True)
    clock = workdir / "seconds.txt"  # time spent by earlier, interrupted sessions
    before = float(clock.read_text()) if clock.exists() else 0.0
    t0 = time.perf_counter()
    try:
        delta, resolved = run_attack(attack, clean.x, clean.y, num_classes=clean.num_classes,
                                     rt=rt, preset=preset, params=params, workdir=workdir)
    finally:
        seconds = before + time.perf_counter() - t0
        if workdir.exists():
            atomic_write_text(clock, f"{seconds:.3f}")
    eps = resolved.get(info.eps_param) if info.eps_param else None
    manifest = save_poison(out, clean=clean, delta=delta.cpu(), attack=attack, preset=preset,
                           params=json_ready(resolved), norm=info.norm_for(resolved), eps=eps,
                           seed=seed, dataset=dataset, seconds=seconds)
    shutil.rmtree(workdir, ignore_errors=True)
    return manifest
