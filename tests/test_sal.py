"""SAL engines (uebench.learnability): suffix exactness, compat == reference loop, fast-engine
invariants, the public API and the training callback. Tiny float64 models, CPU, seconds."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from uebench.config import TrainCfg
from uebench.errors import UnknownNameError
from uebench.learnability import SAL_ENGINES, SALCallback, SuffixPlan, measure_sal, run_sal
from uebench.learnability import fast as fast_module
from uebench.learnability.compat import compat_sal, project_rows, sal_from_extremes
from uebench.learnability.fast import fast_sal, strong_reference
from uebench.learnability.reference import reference_sal
from uebench.learnability.sal import cost_model, suffix_macs
from uebench.learnability.suffix import SALTask, measuring
from uebench.models import get_model
from uebench.runtime import Runtime
from uebench.train.loop import fit

pytestmark = pytest.mark.timeout(120)
RT = Runtime(device="cpu", seed=0, progress=False)
F64 = torch.float64


def build(name: str, channels: int = 3, side: int = 16, width: float = 1.0) -> torch.nn.Module:
    torch.manual_seed(0)
    model = get_model(name, in_channels=channels, image_size=side, num_classes=10, width=width)
    for m in model.modules():  # non-trivial eval-mode BatchNorm statistics
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.normal_(0.0, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    return model


def data(n: int = 48, channels: int = 3, side: int = 16, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, channels, side, side, generator=gen) * 255).to(torch.uint8)
    return x, torch.randint(0, 10, (n,), generator=gen)


# ----------------------------------------------------------------------------- suffix plans
SUFFIX_MODELS = [("tiny", 1.0), ("lenet5", 1.0), ("resnet18", 0.125), ("senet18", 0.125),
                 ("vit", 0.0625)]


@pytest.mark.parametrize(("name", "width"), SUFFIX_MODELS)
def test_suffix_equals_full_forward_and_gradient(name: str, width: float) -> None:
    side = 32 if name == "lenet5" else 16
    model = build(name, side=side, width=width).double().eval()
    x = torch.rand(3, 3, side, side, dtype=F64, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([1, 4, 7])
    plan = SuffixPlan(model)
    with torch.no_grad():
        logits, cache = plan.capture(x)
    assert (logits - model(x)).abs().max() <= 1e-12
    for layer in plan.layers:
        weight = plan.weight(layer).detach()
        gen = torch.Generator().manual_seed(len(layer))
        delta = torch.randn(weight.shape, generator=gen, dtype=F64) * 0.05 * weight.norm()
        delta = (delta / delta.norm() * 0.05 * weight.norm()).requires_grad_(True)
        out = plan.suffix(layer, delta, cache)
        w_full = (weight + delta.detach()).requires_grad_(True)
        full = functional_call(model, {f"{layer}.weight": w_full}, (x,))
        assert (out - full).abs().max() <= 1e-10, layer
        (g_suffix,) = torch.autograd.grad(F.cross_entropy(out, y), delta)
        (g_full,) = torch.autograd.grad(F.cross_entropy(full, y), w_full)
        assert (g_suffix - g_full).abs().max() <= 1e-10, layer
        stacked = plan.batched_suffix(layer, torch.stack([delta.detach(), -delta.detach()]), cache)
        assert (stacked[0] - out).abs().max() <= 1e-10


def test_suffix_plan_rejects_unknown_layer() -> None:
    with pytest.raises(ValueError, match="not Conv2d/Linear"):
        SuffixPlan(build("tiny"), ["net.bn1"])


# ----------------------------------------------------------------------------- compat engine
@pytest.mark.parametrize(("name", "width", "eps", "rounds"), [
    ("tiny", 1.0, 0.05, 3), ("tiny", 1.0, 0.002, 2),  # the second one projects every round
    ("lenet5", 1.0, 0.05, 2), ("resnet18", 0.125, 0.05, 1),
])
def test_compat_equals_reference_loop(name: str, width: float, eps: float, rounds: int) -> None:
    side = 32 if name == "lenet5" else 16
    x, y = data(48, side=side)
    task = SALTask(build(name, side=side, width=width), x, y, RT, eps=eps, batch_size=16,
                   crop_padding=2, dtype=F64)
    fast, slow = compat_sal(task, rounds=rounds), reference_sal(task, rounds=rounds)
    assert fast.origin == pytest.approx(slow.origin, abs=1e-12)
    for layer in fast.values:
        assert fast.values[layer] == pytest.approx(slow.values[layer], abs=1e-10)
        assert fast.s_max[layer] == pytest.approx(slow.s_max[layer], abs=1e-10)
        assert fast.s_min[layer] == pytest.approx(slow.s_min[layer], abs=1e-10)
        assert fast.values[layer] >= 0.0
        for ratio in fast.details["delta_norm_ratio"][layer]:
            assert ratio <= eps * (1 + 1e-6)
    if eps < 0.01:  # the projection did bind
        assert max(max(r) for r in fast.details["delta_norm_ratio"].values()) > 0.99 * eps


def test_projection_and_sign_rule() -> None:
    theta_norm = torch.tensor(2.0, dtype=F64)
    deltas = torch.stack([torch.full((3, 4), 1.0, dtype=F64), torch.full((3, 4), 1e-4, dtype=F64)])
    project_rows(deltas, theta_norm, 0.05)
    assert deltas[0].norm() == pytest.approx(0.1, rel=1e-12)  # projected onto ε‖θ‖
    assert deltas[1].norm() == pytest.approx(1e-4 * 12**0.5)  # inside: untouched
    assert sal_from_extremes(1.5, 0.9, 1.0) == pytest.approx((0.5, 0.5, 0.1))
    assert sal_from_extremes(1.1, 0.7, 1.0) == pytest.approx((0.3, 0.1, 0.3))
    assert sal_from_extremes(1.0, 1.0, 1.0) == (0.0, 0.0, 0.0)


def test_compat_sign_rule_and_official_origin() -> None:
    x, y = data(48)
    res = run_sal(build("tiny"), x, y, rt=RT, engine="compat", batch_size=16, origin_loss=2.5,
                  dtype=F64, rounds=2)
    assert res.origin == 2.5 and res.details["origin_kind"] == "official"
    for layer, value in res.values.items():
        s_max, s_min = res.s_max[layer], res.s_min[layer]
        assert value == (s_max if abs(s_max) > abs(s_min) else s_min) and value >= 0
    # origin_loss == 0 (the official cutmix/mixup case): the eval-mode pass value is used
    zero = run_sal(build("tiny"), x, y, rt=RT, engine="compat", batch_size=16, origin_loss=0.0,
                   dtype=F64, rounds=1)
    exact = run_sal(build("tiny"), x, y, rt=RT, engine="compat", batch_size=16, origin="exact",
                    dtype=F64, rounds=1)
    assert zero.origin == exact.origin and zero.values == exact.values


# ----------------------------------------------------------------------------- fast engine
def _full_gradient_norms(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict:
    model = model.double().eval()
    logits = model(x.double() / 255)
    names = [n for n in SuffixPlan(model).layers]
    weights = [model.get_submodule(n).weight for n in names]
    grads = torch.autograd.grad(F.cross_entropy(logits, y), weights)
    return {n: (g.norm() * w.norm()).item() for n, g, w in zip(names, grads, weights)}


def test_fast_small_eps_matches_first_order() -> None:
    x, y = data(64)
    eps = 1e-4
    res = measure_sal(build("tiny"), x, y, rt=RT, eps=eps, dtype=F64, probe_size=None)
    detailed = run_sal(build("tiny"), x, y, rt=RT, eps=eps, dtype=F64, probe_size=None)
    for layer, gw in _full_gradient_norms(build("tiny"), x, y).items():
        assert detailed.s_max[layer] / (eps * gw) == pytest.approx(1.0, rel=0.01)
        assert res[layer] == detailed.values[layer]


def test_fast_stays_in_ball_and_beats_one_step(monkeypatch: pytest.MonkeyPatch) -> None:
    worst = []
    original = fast_module._project

    def recording(deltas: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
        out = original(deltas, radius)
        worst.append(float((out.flatten(1).norm(dim=1) / radius).max()))
        return out

    monkeypatch.setattr(fast_module, "_project", recording)
    x, y = data(64)
    task = SALTask(build("tiny"), x, y, RT, eps=0.05, dtype=F64)
    five = fast_sal(task, steps=5, probe_size=None, restarts=1)
    one = fast_sal(task, steps=1, probe_size=None)
    assert worst and max(worst) <= 1 + 1e-6
    for layer in five.values:
        assert five.values[layer] >= one.values[layer] - 1e-12
        assert max(five.details["delta_norm_ratio"][layer]) <= 0.05 * (1 + 1e-6)
    strong = strong_reference(build("tiny"), x, y, rt=RT, steps=12, restarts=1, dtype=F64)
    plain = fast_sal(task, steps=5, probe_size=None)
    for layer in plain.values:  # same first five steps + more: never below
        assert strong.values[layer] >= plain.values[layer] - 1e-12


def test_fast_options_are_consistent() -> None:
    x, y = data(64)
    task = SALTask(build("tiny"), x, y, RT, eps=0.05, dtype=F64)
    base = fast_sal(task, probe_size=32)
    assert base.details["probe_size"] == 32
    assert fast_sal(task, probe_size=32).values == base.values  # seeded: deterministic
    grouped = fast_sal(task, probe_size=32, cache_gb=1e-9, chunk_size=10)
    assert grouped.details["layer_groups"] == len(base.values)
    for layer in base.values:
        assert grouped.values[layer] == pytest.approx(base.values[layer], abs=1e-12)
    scored = fast_sal(task, probe_size=32, eval_size=64)
    assert all(v >= 0 for v in scored.values.values())
    assert scored.origin != base.origin  # scored on all 64 images, not the 32-image probe


def test_bf16_autocast_runs() -> None:
    x, y = data(32)
    values = measure_sal(build("tiny"), x, y, rt=RT, precision="bf16", probe_size=32, steps=2)
    assert all(torch.isfinite(torch.tensor(v)) and v >= 0 for v in values.values())


def test_cost_model_matches_flop_counter() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    model, (x, y) = build("tiny"), data(64)
    with measuring(model, torch.device("cpu")) as m:
        forward, suffix = suffix_macs(SuffixPlan(m), torch.rand(2, 3, 16, 16))
    for engine, opts in [("compat", {"rounds": 1}), ("fast", {"probe_size": 32, "restarts": 1})]:
        with FlopCounterMode(display=False) as counter:
            run_sal(model, x, y, rt=RT, engine=engine, batch_size=16, **opts)
        predicted = cost_model(forward, suffix, n_train=64, batch_size=16, rounds=1,
                               probe_size=32, restarts=opts.get("restarts", 0))[engine]
        assert counter.get_total_flops() / 2 == pytest.approx(predicted, rel=0.05)


# ----------------------------------------------------------------------------- API + callback
def test_api_validation() -> None:
    assert {"compat", "fast"} <= set(SAL_ENGINES.names())
    x, y = data(32)
    with pytest.raises(UnknownNameError):
        measure_sal(build("tiny"), x, y, rt=RT, engine="nope")
    with pytest.raises(TypeError, match="unknown option"):
        measure_sal(build("tiny"), x, y, rt=RT, engine="compat", steps=3)
    with pytest.raises(ValueError, match="origin_loss"):
        measure_sal(build("tiny"), x, y, rt=RT, origin="official")
    with pytest.raises(TypeError):
        SALCallback("fast", rounds=3)
    values = measure_sal(build("tiny"), x, y, rt=RT, layers=["net.fc"], probe_size=16)
    assert list(values) == ["net.fc"]


@pytest.mark.parametrize("engine", ["fast", "compat"])
def test_callback_leaves_training_untouched(engine: str) -> None:
    x, y = data(64)
    cfg = TrainCfg(epochs=2, batch_size=16, lr=0.05, milestones=(), crop_padding=2)
    plain = build("tiny")
    fit(plain, x, y, cfg=cfg, rt=RT)
    measured = build("tiny")
    options = {"rounds": 1} if engine == "compat" else {"probe_size": 32}
    callback = SALCallback(engine, **options)
    rows = fit(measured, x, y, cfg=cfg, rt=RT, callbacks=[callback])
    for key, value in plain.state_dict().items():
        assert torch.equal(value, measured.state_dict()[key]), key
    assert measured.training
    assert all(p.requires_grad for p in measured.parameters())
    for row in rows:
        assert set(row["sal"]) == {"net.conv1", "net.conv2", "net.fc"}
        assert row["sal_engine"] == engine and row["sal_seconds"] >= 0
        expected_kind = "official" if engine == "compat" else "exact"
        assert row["sal_origin_kind"] == expected_kind
    if engine == "compat":
        assert rows[0]["sal_origin"] == rows[0]["train_loss"]
    again = callback(_ctx(measured, x, y, cfg, rows[-1]))
    assert again["sal"] == rows[-1]["sal"]  # deterministic from (seed, epoch)


def _ctx(model, x, y, cfg, row):
    from uebench.train.loop import EpochContext

    return EpochContext(row["epoch"], model, row["train_loss"], row["train_acc"], x, y, cfg, RT,
                        "fp32")
