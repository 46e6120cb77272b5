"""Poisons of multi-task data, written to the single-task poison store.

Two kinds of method, looked up by name:

- the multi-task methods of :data:`MULTITASK_ATTACKS` (``em``: error-minimizing noise for the
  summed loss of ``tasks``, :mod:`.em`), which read every target;
- every classification attack of :data:`uebench.attacks.ATTACKS` not shadowed here (``ops``,
  ``ar``, ``lsp``, ``random``, ...), run on the images with the label task's labels (the scenes'
  ``scene`` class), exactly as on a classification dataset.

Either way the result is stored by :func:`uebench.poisons.store.save_poison` (quantized int16 δ,
indices, labels = the label task's, manifest) with a ``multitask`` manifest field, so
:func:`~uebench.multitask.poisons.load_poisoned_multitask` (and ``load_poisoned`` on
:func:`~uebench.multitask.poisons.as_image_set`) apply it.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from uebench.attacks.base import (
    AttackInfo,
    attack_info,
    attack_spec,
    fill_shape_defaults,
    resolve_params,
    run_attack,
)
from uebench.attacks.generate import json_ready, make_runtime
from uebench.data.base import ImageSet
from uebench.multitask.dataset import MultiTaskSet, load_multitask
from uebench.multitask.em import multitask_em
from uebench.multitask.poisons import as_image_set
from uebench.poisons.manifest import read_manifest
from uebench.poisons.store import save_poison
from uebench.registry import Registry
from uebench.runtime import Runtime
from uebench.utils.io import DirectoryLock, check_output_dir, refuse_if_different

MultiTaskAttackFn = Callable[..., torch.Tensor]  # (data, *, rt, workdir, **params) -> delta
MULTITASK_ATTACKS: Registry[MultiTaskAttackFn] = Registry("multi-task attack")
_NOT_PARAMS = ("rt", "workdir")


def register_multitask_attack(name: str, *, norm: str, eps_param: str | None = "eps",
                              description: str, paper: str = "",
                              presets: Mapping[str, Mapping[str, Any]] | None = None,
                              ) -> Callable[[MultiTaskAttackFn], MultiTaskAttackFn]:
    """Register a multi-task attack ``(data, *, rt, workdir, **params) -> delta``; its parameters
    are declared and checked exactly as a classification attack's
    (:func:`uebench.attacks.base.attack_spec`)."""

    def deco(fn: MultiTaskAttackFn) -> MultiTaskAttackFn:
        info = attack_spec(name, fn, norm=norm, eps_param=eps_param, presets=presets,
                           description=description, paper=paper, not_params=_NOT_PARAMS)
        MULTITASK_ATTACKS.register(name, info=info, norm=norm, eps_param=eps_param,
                                   description=description)(fn)
        return fn

    return deco


@register_multitask_attack("em", norm="linf",
                           description="error-minimizing noise for the summed loss of `tasks`",
                           paper="Huang et al., ICLR 2021, arXiv 2101.04898 (multi-task: Ye et "
                                 "al., ICLR 2025, §3.4)")
def em(data: MultiTaskSet, *, rt: Runtime, workdir: Path | None = None,
       tasks: tuple[str, ...] = (), eps: float = 8 / 255, steps: int = 20,
       step_size: float = 0.8 / 255, train_steps: int = 10, batch_size: int = 512,
       stop_acc: float = 0.99, max_rounds: int = 20, surrogate: str = "lenet",
       surrogate_width: float = 1.0, decoder_channels: int = 32) -> torch.Tensor:
    """:func:`~uebench.multitask.em.multitask_em` (``tasks`` empty = every task)."""
    return multitask_em(data, tasks=tasks or None, rt=rt, workdir=workdir, eps=eps, steps=steps,
                        step_size=step_size, train_steps=train_steps, batch_size=batch_size,
                        stop_acc=stop_acc, max_rounds=max_rounds, surrogate=surrogate,
                        surrogate_width=surrogate_width,
                        decoder_channels=decoder_channels).delta


@dataclass(frozen=True)
class Method:
    """A poisoning method of multi-task data: how to check its parameters and run it."""

    name: str
    resolve: Callable[[str, Mapping[str, Any], ImageSet], dict[str, Any]]
    run: Callable[..., torch.Tensor]  # (clean, images, resolved, rt, workdir) -> delta
    budget: Callable[[Mapping[str, Any]], tuple[str | None, float | None]]
    params: frozenset[str]  # the parameter names it takes


def method(name: str) -> Method:
    """The multi-task method ``name``, else the classification attack ``name`` on the labels."""
    if name in MULTITASK_ATTACKS:
        mt: AttackInfo = MULTITASK_ATTACKS.meta(name)["info"]
        return Method(
            name, lambda preset, params, images: resolve_params(mt, preset, params),
            lambda clean, images, resolved, rt, workdir: MULTITASK_ATTACKS.get(name)(
                clean, rt=rt, workdir=workdir, **resolved),
            lambda resolved: (mt.norm_for(resolved),
                              resolved.get(mt.eps_param) if mt.eps_param else None),
            frozenset(mt.defaults))

    info = attack_info(name)  # unknown names fail here, before any data is loaded

    def run(clean: MultiTaskSet, images: ImageSet, resolved: dict[str, Any], rt: Runtime,
            workdir: Path) -> torch.Tensor:
        return run_attack(name, images.x, images.y, num_classes=images.num_classes, rt=rt,
                          params=resolved, workdir=workdir)[0]

    return Method(
        name,
        lambda preset, params, images: fill_shape_defaults(
            name, resolve_params(name, preset, params), images.image_shape),
        run,
        lambda resolved: (info.norm_for(resolved),
                          resolved.get(info.eps_param) if info.eps_param else None),
        frozenset(info.defaults))


def generate_multitask_poison(
    attack: str, *, out: Path | str, dataset: str = "scenes",
    options: Mapping[str, Any] | None = None, data_dir: str | Path | None = None,
    train_size: int | None = None, seed: int = 0, preset: str = "original",
    params: Mapping[str, Any] | None = None, label_task: str | None = None,
    device: str | None = None, progress: bool = True,
) -> dict[str, Any]:
    """Poison a multi-task dataset's (sub)training split into ``out``; returns the manifest.

    Args:
        attack: a :data:`MULTITASK_ATTACKS` name, else a classification attack name.
        out: the poison directory (new, empty, or this poison: reused; another is refused).
        dataset, options, data_dir: the multi-task dataset and its loader options.
        train_size, seed: the seeded training subset (runs must use the same: ``data.train_size``
            and ``data.subset_seed`` or ``seed``).
        preset, params: the attack's preset and parameters (checked before any data loads
            where possible).
        label_task: the classification task whose labels are stored (default: the first).
        device, progress: where to compute, progress bars.
    """
    m = method(attack)
    out = check_output_dir(out, marker="manifest.json", what="a uebench poison")
    rt = make_runtime(device, seed, progress)
    options = dict(options or {})
    clean = load_multitask(dataset, "train", data_dir=data_dir, size=train_size, seed=seed,
                           **options)
    images = as_image_set(clean, label_task)
    resolved = m.resolve(preset, dict(params or {}), images)
    info = {"dataset": dataset, "options": json_ready(options),
            "label_task": images.meta["label_task"], "tasks": list(clean.task_names)}
    identity = {"attack": attack, "preset": preset, "seed": seed, "dataset": dataset,
                "n": len(clean), "params": json_ready(resolved), "multitask": info}
    with DirectoryLock(out):
        if (out / "manifest.json").exists():
            manifest = read_manifest(out)
            refuse_if_different(out, {k: manifest.get(k) for k in identity}, identity,
                                what="a poison", fix="Choose another --out, or delete that "
                                                     "directory to regenerate.")
            return manifest
        workdir = out / ".work"
        t0 = time.perf_counter()
        delta = m.run(clean, images, resolved, rt, workdir)
        norm, eps = m.budget(resolved)
        manifest = save_poison(out, clean=images, delta=delta.cpu(), attack=attack, preset=preset,
                               params=json_ready(resolved), norm=norm, eps=eps, seed=seed,
                               dataset=dataset, seconds=time.perf_counter() - t0,
                               extra={"multitask": info})
        shutil.rmtree(workdir, ignore_errors=True)
        return manifest


def generate_for_run(cfg: Any, attack: str, out: Path | str, *,
                     params: Mapping[str, Any] | None = None, preset: str = "original",
                     label_task: str | None = None, progress: bool = True) -> dict[str, Any]:
    """:func:`generate_multitask_poison` for the training images of a
    :class:`~uebench.multitask.config.MultiTaskRunCfg` (its dataset, loader options, subset and
    subset seed), so runs with that data section load the poison."""
    d = cfg.data
    return generate_multitask_poison(
        attack, out=out, dataset=d.name, options=d.options, data_dir=d.data_dir,
        train_size=d.train_size, seed=cfg.seed if d.subset_seed is None else d.subset_seed,
        preset=preset, params=params, label_task=label_task, device=cfg.device,
        progress=progress)
