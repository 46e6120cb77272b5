"""Multi-task EM and poisons of multi-task data: the search lowers its own objective within its
budget, is seeded, and the result lives in the ordinary poison store (load_poisoned works)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from uebench.errors import PoisonValidationError, UebenchError
from uebench.multitask import load_multitask
from uebench.multitask.em import SummedLoss, multitask_em
from uebench.multitask.generate import generate_multitask_poison
from uebench.multitask.poisons import as_image_set, load_poisoned_multitask
from uebench.poisons.manifest import read_manifest
from uebench.poisons.store import load_poisoned
from uebench.runtime import Runtime

pytestmark = pytest.mark.timeout(120)
EPS = 8 / 255
SMALL = {"steps": 4, "step_size": 2 / 255, "train_steps": 3, "batch_size": 32, "max_rounds": 3,
         "decoder_channels": 8}


@pytest.fixture(scope="module")
def scenes():
    return load_multitask("scenes", "train", n=64, image_size=16)


def objective(model: torch.nn.Module, data, images: torch.Tensor) -> float:
    """Mean over samples of the summed per-sample task losses of ``model`` (eval mode)."""
    loss = SummedLoss(model.eval(), data)
    loss.targets = dict(data.targets)
    with torch.no_grad():
        return float(loss(images).mean())


@pytest.mark.parametrize("tasks", [["scene"], ["segment", "depth"], None])
def test_multitask_em_lowers_its_own_objective(scenes, tasks) -> None:
    rt = Runtime(device="cpu", seed=1, progress=False)
    res = multitask_em(scenes, tasks=tasks, rt=rt, **SMALL)
    chosen = scenes.select(tasks) if tasks else scenes
    x = scenes.float()
    assert res.delta.shape == x.shape
    assert res.delta.abs().max() <= EPS + 1e-6
    assert (x + res.delta).min() >= 0 and (x + res.delta).max() <= 1
    assert set(res.surrogate.heads) == set(chosen.task_names)
    gen = torch.Generator().manual_seed(0)
    noise = ((torch.rand(x.shape, generator=gen) * 2 - 1) * EPS + x).clamp(0, 1)
    poisoned = objective(res.surrogate, chosen, x + res.delta)
    assert poisoned < objective(res.surrogate, chosen, x)
    assert poisoned < objective(res.surrogate, chosen, noise)
    assert [h["round"] for h in res.history] == [1, 2, 3]
    assert res.history[-1]["noisy/loss"] < res.history[0]["noisy/loss"]
    again = multitask_em(scenes, tasks=tasks, rt=rt, **SMALL)
    assert torch.equal(again.delta, res.delta)


def test_classification_objective_stops_like_em(scenes) -> None:
    rt = Runtime(device="cpu", seed=0, progress=False)
    res = multitask_em(scenes, tasks=["scene"], rt=rt, **{**SMALL, "max_rounds": 6},
                       stop_acc=0.0)
    assert len(res.history) == 1  # accuracy > 0 after the first round: done
    dense = multitask_em(scenes, tasks=["depth"], rt=rt, **SMALL, stop_acc=0.0)
    assert len(dense.history) == SMALL["max_rounds"]  # no accuracy to stop at


def test_resume_from_a_workdir(scenes, tmp_path: Path) -> None:
    rt = Runtime(device="cpu", seed=2, progress=False)
    whole = multitask_em(scenes, tasks=["depth"], rt=rt, **SMALL)
    multitask_em(scenes, tasks=["depth"], rt=rt, workdir=tmp_path, **{**SMALL, "max_rounds": 2})
    resumed = multitask_em(scenes, tasks=["depth"], rt=rt, workdir=tmp_path, **SMALL)
    assert torch.equal(resumed.delta, whole.delta)


@pytest.mark.parametrize(("attack", "params"), [
    ("em", {"tasks": ["scene", "depth"], **SMALL}), ("ops", {}), ("random", {}), ("lsp", {}),
    ("ar", {})])
def test_poisons_live_in_the_ordinary_store(scenes, tmp_path: Path, attack: str,
                                           params: dict) -> None:
    out = tmp_path / attack
    manifest = generate_multitask_poison(attack, out=out, options={"n": 64, "image_size": 16},
                                         params=params, progress=False)
    assert manifest["multitask"]["label_task"] == "scene" and manifest["n"] == 64
    assert read_manifest(out)["attack"] == attack
    images = as_image_set(scenes)
    poisoned = load_poisoned(out, images)  # the single-task loader validates and applies it
    assert torch.equal(poisoned.y, scenes.targets["scene"])
    multi = load_poisoned_multitask(out, scenes)
    assert torch.equal(multi.x, poisoned.x) and not torch.equal(multi.x, scenes.x)
    assert all(torch.equal(multi.targets[t], scenes.targets[t]) for t in scenes.tasks)
    # the same call reuses it; other data are refused
    assert generate_multitask_poison(attack, out=out, options={"n": 64, "image_size": 16},
                                     params=params, progress=False) == manifest
    with pytest.raises(PoisonValidationError):
        load_poisoned_multitask(out, load_multitask("scenes", "train", n=64, image_size=16,
                                                    data_seed=1))
    with pytest.raises(PoisonValidationError, match="select"):
        load_poisoned_multitask(out, scenes.select(["depth"]))


def test_bad_parameters_are_refused_before_compute(tmp_path: Path) -> None:
    with pytest.raises(UebenchError, match="no parameter"):
        generate_multitask_poison("em", out=tmp_path / "a", options={"n": 8, "image_size": 16},
                                  params={"stepz": 3}, progress=False)
    with pytest.raises(UebenchError, match="unknown attack"):
        generate_multitask_poison("nope", out=tmp_path / "b", progress=False)
    with pytest.raises(UebenchError, match="no classification task"):
        as_image_set(load_multitask("scenes", "train", n=8, image_size=16).select(["depth"]))
