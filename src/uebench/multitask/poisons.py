"""Multi-task data in the single-task poison store: images + the label task's labels.

A poison of a multi-task split is stored exactly like a classification poison
(:mod:`uebench.poisons.store`: int16 δ, ``indices``, ``labels``, ``manifest.json``): the
"labels" are those of the split's *label task* (its first classification task, e.g. the scenes'
``scene`` class; soft labels by their argmax), so ``load_poisoned`` validates and applies it like
any other poison. The manifest's ``multitask`` field records the dataset, its loader options, the
label task and the tasks whose losses the perturbation was made for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from uebench.data.base import ImageSet
from uebench.errors import PoisonValidationError, UebenchError
from uebench.multitask.dataset import MultiTaskSet
from uebench.poisons.manifest import read_manifest
from uebench.poisons.store import load_poisoned


def label_task(data: MultiTaskSet, task: str | None = None) -> str:
    """The classification task whose labels stand for the images' class (default: the first)."""
    if task is not None:
        if task not in data.tasks or data.tasks[task].kind != "classification":
            kinds = {t: s.kind for t, s in data.tasks.items()}
            raise UebenchError(f"label task '{task}' must be a classification task of "
                               f"{data.name}; its tasks: {kinds}")
        return task
    for name, spec in data.tasks.items():
        if spec.kind == "classification":
            return name
    raise UebenchError(f"{data.name} has no classification task to take class labels from "
                       f"(tasks {list(data.tasks)}); poisons need one for their labels")


def as_image_set(data: MultiTaskSet, task: str | None = None) -> ImageSet:
    """The images with the label task's labels (int64; soft labels by argmax) as an ImageSet."""
    name = label_task(data, task)
    spec, target = data.tasks[name], data.targets[name]
    labels = target.argmax(1) if target.is_floating_point() else target.long()
    classes = spec.classes or tuple(str(c) for c in range(spec.channels))
    meta = {**data.meta, "indices": data.indices.clone(), "label_task": name}
    return ImageSet(data.x, labels.contiguous(), tuple(classes), data.name, meta)


def poison_label_task(poison_dir: Path | str) -> str | None:
    """The label task recorded in a poison's manifest (None for a single-task poison)."""
    info = read_manifest(poison_dir).get("multitask")
    return info.get("label_task") if isinstance(info, dict) else None


def load_poisoned_multitask(poison_dir: Path | str, clean: MultiTaskSet) -> MultiTaskSet:
    """``clean`` with the poisoned images of ``poison_dir`` (validated as any stored poison).

    ``clean`` must be the split the poison was made for, with its label task among the tasks
    (select tasks *after* applying the poison).
    """
    task = poison_label_task(poison_dir)
    if task is not None and task not in clean.tasks:
        raise PoisonValidationError(
            f"{poison_dir} labels its images by task '{task}', which {clean.name} (tasks "
            f"{list(clean.tasks)}) lacks: apply the poison before selecting tasks")
    poisoned = load_poisoned(Path(poison_dir), as_image_set(clean, task))
    meta: dict[str, Any] = {**clean.meta, "poison_dir": str(poison_dir),
                            "poison_attack": poisoned.meta.get("poison_attack")}
    return MultiTaskSet(poisoned.x, clean.targets, clean.tasks, clean.name, meta)
