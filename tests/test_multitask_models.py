"""Multi-task models: shapes per task kind, gradients, torch.fx tracing, stable layer paths."""

from __future__ import annotations

import pytest
import torch
from torch import fx

from uebench.learnability.suffix import SuffixPlan
from uebench.models import layer_names
from uebench.multitask import BACKBONES, TaskView, build_multitask_model
from uebench.multitask.scenes import scene_tasks

SIDE = 32
TASKS = scene_tasks()  # one task of every kind: classification, segmentation, depth, keypoints
HEAD_LAYERS = {"classification": ["linear"], "dense": ["reduce_conv", "skip_conv", "fuse_conv",
                                                       "out"]}
BACKBONE_LAYERS = {"resnet18": 20, "resnet10": 12, "lenet": 2}  # stem + block convs + shortcuts


@pytest.fixture(scope="module", params=BACKBONES.names())
def named(request: pytest.FixtureRequest) -> tuple[str, torch.nn.Module]:
    torch.manual_seed(0)
    return request.param, build_multitask_model(TASKS, backbone=request.param, image_size=SIDE,
                                                width=0.125, decoder_channels=8).eval()


@pytest.fixture()
def model(named: tuple[str, torch.nn.Module]) -> torch.nn.Module:
    return named[1]


def images(n: int = 2) -> torch.Tensor:
    return torch.rand(n, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(1))


def test_every_backbone_is_covered() -> None:
    assert set(BACKBONE_LAYERS) == set(BACKBONES.names())


def test_outputs_per_task_kind(model: torch.nn.Module) -> None:
    out = model(images())
    assert list(out) == list(TASKS)
    for task, spec in TASKS.items():
        want = (2, spec.channels, SIDE, SIDE) if spec.dense else (2, spec.channels)
        assert out[task].shape == want, task
        assert torch.isfinite(out[task]).all()


def test_every_parameter_gets_a_gradient(model: torch.nn.Module) -> None:
    model.train()
    out = model(images(3))
    sum(o.square().mean() for o in out.values()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    model.zero_grad(set_to_none=True)
    model.eval()


def test_fx_trace_reproduces_eager_outputs(model: torch.nn.Module) -> None:
    x = images()
    traced = fx.symbolic_trace(model)
    eager, got = model(x), traced(x)
    for task in TASKS:
        assert torch.allclose(eager[task], got[task], atol=1e-6), task
    for task in TASKS:
        view = TaskView(model, task)
        assert torch.allclose(fx.symbolic_trace(view)(x), eager[task], atol=1e-6)


def test_layer_paths_are_stable(named: tuple[str, torch.nn.Module]) -> None:
    name, model = named
    names = layer_names(model)
    backbone = [n for n in names if n.startswith("backbone.")]
    assert len(backbone) == BACKBONE_LAYERS[name]
    heads = []
    for task, spec in TASKS.items():
        heads += [f"heads.{task}.{layer}"
                  for layer in HEAD_LAYERS["dense" if spec.dense else "classification"]]
    assert names == backbone + heads
    for task in TASKS:  # a task view has the same paths: its backbone and its own head
        assert layer_names(TaskView(model, task)) == backbone + [
            h for h in heads if h.startswith(f"heads.{task}.")]
    if name.startswith("resnet"):  # the single-task classifier's (kuangliu's) paths
        assert {"backbone.conv1", "backbone.layer2.0.shortcut.0"} <= set(names)


def test_normalization_lives_in_the_model() -> None:
    m = build_multitask_model(TASKS, backbone="lenet", image_size=SIDE, mean=(0.1, 0.2, 0.3),
                              std=(0.5, 0.5, 0.5))
    state = m.state_dict()
    assert torch.allclose(state["normalize.mean"].flatten(), torch.tensor([0.1, 0.2, 0.3]))


def test_sal_suffix_plan_traces_a_task_view(model: torch.nn.Module) -> None:
    # the SAL engines perturb one layer and re-run its suffix: that must reproduce the output
    view = TaskView(model, "depth")
    layers = [layer_names(view)[0], "heads.depth.fuse_conv"]
    plan = SuffixPlan(view, layers)
    x = images()
    with torch.no_grad():
        clean, cache = plan.capture(x)
        assert torch.allclose(clean, model(x)["depth"], atol=1e-5)
        for layer in layers:
            zero = torch.zeros_like(plan.weight(layer))
            assert torch.allclose(plan.suffix(layer, zero, cache), clean, atol=1e-5)

