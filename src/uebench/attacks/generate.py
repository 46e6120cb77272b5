"""Poison generation API (mirrors ``uebench poison``): run an attack on a dataset's (sub)training
set and write the result to the poison store (:mod:`uebench.poisons`)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from uebench.attacks.base import attack_info, fill_shape_defaults, resolve_params, run_attack
from uebench.errors import ConfigError
from uebench.poisons.api import clean_train_set
from uebench.poisons.manifest import manifest_attack, read_manifest
from uebench.poisons.store import save_poison
from uebench.runtime import Runtime, resolve_device
from uebench.utils.io import DirectoryLock, atomic_write_text, check_output_dir, refuse_if_different


def json_ready(params: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(params, default=str))


def make_runtime(device: str | None, seed: int, progress: bool) -> Runtime:
    return Runtime(device=resolve_device(device), seed=seed, progress=progress)


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
    info = attack_info(attack)  # unknown names and bad parameters fail before any data loads
    resolved = resolve_params(attack, preset, params)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
    out = check_output_dir(out, marker="manifest.json", what="a uebench poison")
    rt = make_runtime(device, seed, progress)  # a bad device fails before any work
    clean = clean_train_set(dataset, data_dir=data_dir, train_size=train_size, seed=seed)
    resolved = fill_shape_defaults(attack, resolved, clean.image_shape)
    identity = {"attack": attack, "preset": preset, "seed": seed, "dataset": dataset,
                "n": len(clean), "params": json_ready(resolved)}
    with DirectoryLock(out):
        if (out / "manifest.json").exists():
            manifest = read_manifest(out)
            old = {**{k: manifest.get(k) for k in identity}, "attack": manifest_attack(manifest)}
            refuse_if_different(out, old, identity, what="a poison",
                                fix="Choose another --out, or delete that directory to "
                                    "regenerate.")
            return manifest
        return _generate(attack, info, clean, out, rt, preset=preset, params=params,
                         dataset=dataset, seed=seed)


def _generate(attack: str, info: Any, clean: Any, out: Path, rt: Runtime, *, preset: str,
              params: dict[str, Any] | None, dataset: str, seed: int) -> dict[str, Any]:
    workdir = out / ".work"
    workdir.mkdir(parents=True, exist_ok=True)
    clock = workdir / "seconds.txt"  # time spent by earlier, interrupted sessions
    try:
        before = float(clock.read_text()) if clock.exists() else 0.0
    except (OSError, ValueError):  # a damaged clock only loses the earlier sessions' seconds
        before = 0.0
    t0 = time.perf_counter()
    try:
        delta, resolved = run_attack(attack, clean.x, clean.y, num_classes=clean.num_classes,
                                     rt=rt, preset=preset, params=params, workdir=workdir)
    finally:
        seconds = before + time.perf_counter() - t0
        if workdir.exists():
            atomic_write_text(clock, f"{seconds:.3f}")
    eps = resolved.get(info.eps_param) if info.eps_param else None
    # an attack may leave what a reader needs to judge the poison (EM: rounds run, whether its
    # surrogate reached stop_acc) in .work/diagnostics.json; it goes into the manifest
    diag = workdir / "diagnostics.json"
    extra = {"diagnostics": json.loads(diag.read_text())} if diag.exists() else None
    manifest = save_poison(out, clean=clean, delta=delta.cpu(), attack=attack, preset=preset,
                           params=json_ready(resolved), norm=info.norm_for(resolved), eps=eps,
                           seed=seed, dataset=dataset, seconds=seconds, extra=extra)
    shutil.rmtree(workdir, ignore_errors=True)
    return manifest
