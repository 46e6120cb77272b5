"""Per-task SAL: suffix exactness for non-CE losses, compat == reference with dense targets,
a one-task multi-task model == the same classifier, the per-epoch callback, per-task UD and
task similarity. Tiny float64 models, CPU, seconds."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from uebench.config import TrainCfg
from uebench.learnability import SAL_ENGINES, SuffixPlan, run_sal
from uebench.learnability.compat import compat_sal
from uebench.learnability.distance import ud_table
from uebench.learnability.reference import reference_sal
from uebench.learnability.task import SALData, SALTask
from uebench.models import get_model, layer_names
from uebench.multitask import TaskView, build_multitask_model, fit_multitask, load_multitask
from uebench.multitask.losses import sample_loss
from uebench.multitask.report import task_similarity, task_ud
from uebench.multitask.sal import TaskSALCallback, measure_task_sal, task_rows
from uebench.runtime import Runtime

pytestmark = pytest.mark.timeout(120)
RT = Runtime(device="cpu", seed=0, progress=False)
F64 = torch.float64
SIDE = 16
DENSE = ["segment", "depth", "keypoints"]  # pixel_ce, masked_l1, heatmap_ce: none is CE


@pytest.fixture(scope="module")
def scenes():
    return load_multitask("scenes", "train", n=24, image_size=SIDE)


def random_bn(model: torch.nn.Module) -> torch.nn.Module:
    for m in model.modules():  # non-trivial eval-mode BatchNorm statistics
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.normal_(0.0, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    return model


def multitask(data, backbone: str = "resnet18", tasks=None) -> torch.nn.Module:
    torch.manual_seed(0)
    chosen = data.select(tasks) if tasks else data
    model = build_multitask_model(chosen.tasks, backbone=backbone, image_size=SIDE, width=0.125,
                                  decoder_channels=8)
    return random_bn(model)


# ----------------------------------------------------------------------------- suffix, non-CE
@pytest.mark.parametrize("backbone", ["resnet18", "lenet"])
@pytest.mark.parametrize("task", DENSE)
def test_suffix_equals_full_forward_for_task_losses(scenes, backbone: str, task: str) -> None:
    """Every layer of a task view: the suffix reproduces the full model with W + Δ, and the
    gradient of the task's (non-CE, dense) per-sample loss matches the full model's."""
    view = TaskView(multitask(scenes, backbone).double().eval(), task)
    x = scenes.float()[:3].double()
    target = scenes.targets[task][:3]
    loss = sample_loss(scenes.tasks[task])
    plan = SuffixPlan(view)
    with torch.no_grad():
        out, cache = plan.capture(x)
    assert (out - view(x)).abs().max() <= 1e-12
    for layer in plan.layers:
        weight = plan.weight(layer).detach()
        delta = torch.randn(weight.shape, generator=torch.Generator().manual_seed(len(layer)),
                            dtype=F64)
        delta = (delta / delta.norm() * 0.05 * weight.norm()).requires_grad_(True)
        suffix = plan.suffix(layer, delta, cache)
        w_full = (weight + delta.detach()).requires_grad_(True)
        full = functional_call(view, {f"{layer}.weight": w_full}, (x,))
        assert (suffix - full).abs().max() <= 1e-10, layer
        (g_suffix,) = torch.autograd.grad(loss(suffix, target).mean(), delta)
        (g_full,) = torch.autograd.grad(loss(full, target).mean(), w_full)
        assert (g_suffix - g_full).abs().max() <= 1e-10, layer
        assert g_full.abs().max() > 0, layer  # the loss does depend on the layer


@pytest.mark.parametrize(("task", "drop_last"), [("depth", True), ("segment", False),
                                                 ("keypoints", True)])
def test_compat_equals_reference_for_a_dense_loss(scenes, task: str, drop_last: bool) -> None:
    view = TaskView(multitask(scenes, "lenet"), task)
    pipe = SALData(batch_size=8, augment="none", drop_last=drop_last)
    sal_task = SALTask(view, scenes.x, scenes.targets[task], RT, pipe, dtype=F64,
                       loss=sample_loss(scenes.tasks[task]))
    fast, slow = compat_sal(sal_task, rounds=2), reference_sal(sal_task, rounds=2)
    assert fast.origin == pytest.approx(slow.origin, abs=1e-12)
    for layer in fast.values:
        assert fast.values[layer] == pytest.approx(slow.values[layer], abs=1e-10)
        assert fast.s_max[layer] == pytest.approx(slow.s_max[layer], abs=1e-10)
    assert any(v > 0 for v in fast.values.values())


def test_replaying_engines_refuse_to_augment_per_pixel_targets(scenes) -> None:
    view = TaskView(multitask(scenes, "lenet"), "depth")
    with pytest.raises(Exception, match="augment"):
        run_sal(view, scenes.x, scenes.targets["depth"], rt=RT, engine="compat", rounds=1,
                data=SALData(8, "flip"), loss=sample_loss(scenes.tasks["depth"]))


@pytest.mark.parametrize("engine", SAL_ENGINES.names())
def test_every_engine_takes_a_task_loss(scenes, engine: str) -> None:
    model = multitask(scenes, "lenet")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opts = SAL_ENGINES.meta(engine)["smoke_options"]
    kwargs = dict(rt=RT, pipeline=SALData(8, "none"), engine=engine, dtype=F64, **opts)
    res = measure_task_sal(model, scenes, "depth", **kwargs)
    assert list(res.values) == layer_names(TaskView(model, "depth"))
    assert all(v >= 0 and math.isfinite(v) for v in res.values.values())
    assert measure_task_sal(model, scenes, "depth", **kwargs).values == res.values
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


# ------------------------------------------------------------------ one task == the classifier
def classifier_twin(mt: torch.nn.Module) -> torch.nn.Module:
    """The zoo ResNet-18 classifier with the one-task multi-task model's weights."""
    clf = get_model("resnet18", in_channels=3, image_size=SIDE, num_classes=4, width=0.125)
    state = {}
    for key, value in mt.state_dict().items():
        key = key.replace("heads.scene.linear", "net.linear").replace("backbone.", "net.")
        state[key] = value
    clf.load_state_dict(state, strict=True)
    return clf


@pytest.mark.parametrize(("engine", "options"), [
    ("fast", {"probe_size": 16, "eval_size": 8, "steps": 2}), ("compat", {"rounds": 2})])
def test_one_task_sal_equals_the_classifiers(scenes, engine: str, options: dict) -> None:
    mt = multitask(scenes, "resnet18", tasks=["scene"]).double()
    clf = classifier_twin(mt).double()
    x, y = scenes.x, scenes.targets["scene"]
    with torch.no_grad():
        assert torch.allclose(mt.eval()(scenes.float().double())["scene"],
                              clf.eval()(scenes.float().double()), atol=1e-12)
    pipe = SALData(batch_size=8, augment="crop_flip", crop_padding=2, drop_last=True)
    single = run_sal(clf, x, y, rt=RT, data=pipe, engine=engine, seed_offsets=(7, 3), **options)
    per_task = measure_task_sal(mt, scenes.select(["scene"]), "scene", rt=RT, pipeline=pipe,
                                engine=engine, seed_offsets=(7, 3), **options)
    renamed = {k.replace("heads.scene.linear", "net.linear").replace("backbone.", "net."): v
               for k, v in per_task.values.items()}
    assert list(renamed) == list(single.values)
    assert per_task.origin == pytest.approx(single.origin, abs=1e-12)
    for layer, value in single.values.items():
        assert renamed[layer] == pytest.approx(value, abs=1e-12), layer


# ----------------------------------------------------------------------------- the callback
def test_callback_measures_every_task_and_leaves_training_untouched(scenes) -> None:
    cfg = TrainCfg(epochs=2, batch_size=8, lr=0.05, schedule="constant", augment="flip")
    plain = multitask(scenes, "lenet")
    fit_multitask(plain, scenes, cfg=cfg, rt=RT)
    measured = multitask(scenes, "lenet")
    callback = TaskSALCallback("fast", probe_size=8, eval_size=8, steps=1)
    rows = fit_multitask(measured, scenes, cfg=cfg, rt=RT, callbacks=[callback])
    for key, value in plain.state_dict().items():
        assert torch.equal(value, measured.state_dict()[key]), key
    assert measured.training and all(p.requires_grad for p in measured.parameters())
    for row in rows:
        assert list(row["task_sal"]) == list(scenes.task_names)
        for task, values in row["task_sal"].items():
            assert list(values) == layer_names(TaskView(measured, task))
        assert row["task_sal_engine"] == "fast" and row["task_sal_origin_kind"] == "exact"
    assert task_rows(rows, "depth")[1] == {"epoch": 2, "sal": rows[1]["task_sal"]["depth"]}


def test_official_origin_is_the_tasks_running_loss(scenes) -> None:
    cfg = TrainCfg(epochs=1, batch_size=8, lr=0.05, schedule="constant", augment="none")
    callback = TaskSALCallback("compat", rounds=1)
    rows = fit_multitask(multitask(scenes, "lenet"), scenes, cfg=cfg, rt=RT,
                         callbacks=[callback], weights={"scene": 1.0, "depth": 1.0})
    origin = rows[0]["task_sal_origin"]
    assert origin["depth"] == rows[0]["train/depth/loss"]
    assert origin["segment"] != rows[0].get("train/segment/loss")  # untrained: exact origin


# ---------------------------------------------------------------- per-task UD and similarity
def _rows(scale: dict[str, float]) -> list[dict]:
    """Two epochs; tasks a and b share layers s1, s2, each has a head layer."""
    return [{"epoch": e, "task_sal": {
        "a": {"s1": 1.0 * e * scale["a"], "s2": 0.1, "heads.a.h": 0.5},
        "b": {"s1": 0.2, "s2": 2.0 * e * scale["b"], "heads.b.h": 0.05}}} for e in (1, 2)]


def test_task_similarity_by_hand() -> None:
    sim = task_similarity(_rows({"a": 1.0, "b": 1.0}))
    assert sim["tasks"] == ["a", "b"] and sim["layers"] == ["s1", "s2"]
    for k, e in enumerate((1, 2)):
        a, b = torch.tensor([1.0 * e, 0.1]), torch.tensor([0.2, 2.0 * e])
        expect = float(F.cosine_similarity(a, b, dim=0))
        assert sim["per_epoch"][k][0][1] == pytest.approx(expect)
        assert sim["per_epoch"][k][0][0] == pytest.approx(1.0)
    assert sim["mean"][0][1] == pytest.approx((sim["per_epoch"][0][0][1]
                                               + sim["per_epoch"][1][0][1]) / 2)


def test_task_ud_is_the_single_task_ud_of_each_task() -> None:
    from uebench.learnability.report import RunRecord

    clean = RunRecord("clean", _rows({"a": 1.0, "b": 1.0}), {})
    poisoned = RunRecord("p", _rows({"a": 0.01, "b": 1.0}), {})
    tables = task_ud(clean, [poisoned])
    for task in ("a", "b"):
        expect = ud_table(("clean", task_rows(clean.rows, task)),
                          [("p", task_rows(poisoned.rows, task))])
        assert tables[task]["beta"] == expect["beta"]
        assert tables[task]["runs"][1]["ud"] == expect["runs"][1]["ud"]
    assert tables["a"]["runs"][1]["ud"] < 1.0 == tables["b"]["runs"][1]["ud"]


def test_pipeline_keeps_flips_for_labels_only() -> None:
    from uebench.multitask.sal import sal_pipeline

    cfg = replace(TrainCfg(), augment="flip", batch_size=32)
    assert sal_pipeline(cfg, 1).augment == "flip"
    assert sal_pipeline(cfg, 3).augment == "none" and sal_pipeline(cfg, 4).batch_size == 32
