"""SAL engines (uebench.learnability): suffix exactness, the engine contract over every registered
engine, compat == the plain reference loop (drop_last both ways), the data pipeline, the official
origin formula, the public API and the training callback. Tiny float64 models, CPU, seconds.
Fast-engine specifics: tests/test_sal_fast.py."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from uebench.config import TrainCfg
from uebench.errors import ConfigError, UnknownNameError
from uebench.learnability import SAL_ENGINES, SALCallback, SuffixPlan, measure_sal, run_sal
from uebench.learnability.compat import compat_sal, project_rows, sal_from_extremes
from uebench.learnability.engines import ENGINE_META_KEYS
from uebench.learnability.reference import reference_sal
from uebench.learnability.sal import SALData, official_running_loss
from uebench.learnability.task import SALTask
from uebench.models import get_model
from uebench.runtime import Runtime
from uebench.train.classification import EpochContext, fit
from uebench.utils.stored import parse_markdown_tables

from .conftest import load_benchmark

pytestmark = pytest.mark.timeout(120)
RT = Runtime(device="cpu", seed=0, progress=False)
F64 = torch.float64
PIPE = SALData(batch_size=16, augment="crop_flip", crop_padding=2, drop_last=True)
ENGINES = SAL_ENGINES.names()


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


# ----------------------------------------------------------------------------- engine contract
def test_registry_metadata() -> None:
    assert {"compat", "fast", "reference"} <= set(ENGINES)
    for name in ENGINES:
        meta = SAL_ENGINES.meta(name)
        assert set(ENGINE_META_KEYS) <= set(meta), name
        assert isinstance(meta["label"], str) and meta["label"]
        assert isinstance(meta["paper_parity"], bool) and isinstance(meta["oracle"], bool)
    assert SAL_ENGINES.meta("compat")["paper_parity"] and SAL_ENGINES.meta("reference")["oracle"]
    assert not SAL_ENGINES.meta("fast")["paper_parity"]


@pytest.mark.parametrize("engine", ENGINES)
def test_engine_contract(engine: str) -> None:
    """Every engine: one finite value >= 0 per layer with the sign rule, deterministic per seed,
    the model untouched, the official origin honoured."""
    x, y = data(48)
    model = build("tiny")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opts = SAL_ENGINES.meta(engine)["smoke_options"]
    res = run_sal(model, x, y, rt=RT, data=PIPE, engine=engine, dtype=F64, **opts)
    assert res.engine == engine and list(res.values) == SuffixPlan(model).layers
    for layer, value in res.values.items():
        s_max, s_min = res.s_max[layer], res.s_min[layer]
        assert value == (s_max if abs(s_max) > abs(s_min) else s_min)
        assert value >= 0 and torch.isfinite(torch.tensor(value))
    again = run_sal(model, x, y, rt=RT, data=PIPE, engine=engine, dtype=F64, **opts)
    assert again.values == res.values
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    official = run_sal(model, x, y, rt=RT, data=PIPE, engine=engine, dtype=F64,
                       origin="official", origin_loss=2.5, **opts)
    assert official.origin == 2.5 and official.details["origin_kind"] == "official"


# ----------------------------------------------------------------------------- compat engine
@pytest.mark.parametrize(("name", "width", "eps", "rounds", "n", "drop_last"), [
    ("tiny", 1.0, 0.05, 3, 48, True), ("tiny", 1.0, 0.002, 2, 48, True),  # 2nd: projection binds
    ("tiny", 1.0, 0.05, 2, 50, False), ("tiny", 1.0, 0.05, 2, 50, True),  # short last batch
    ("lenet5", 1.0, 0.05, 2, 40, False), ("resnet18", 0.125, 0.05, 1, 48, True),
])
def test_compat_equals_reference_loop(name: str, width: float, eps: float, rounds: int, n: int,
                                      drop_last: bool) -> None:
    side = 32 if name == "lenet5" else 16
    x, y = data(n, side=side)
    pipe = SALData(batch_size=16, augment="crop_flip", crop_padding=2, drop_last=drop_last)
    task = SALTask(build(name, side=side, width=width), x, y, RT, pipe, eps=eps, dtype=F64)
    fast, slow = compat_sal(task, rounds=rounds), reference_sal(task, rounds=rounds)
    assert fast.origin == pytest.approx(slow.origin, abs=1e-12)
    assert fast.details["batches_per_pass"] == (n // 16 if drop_last else -(-n // 16))
    for layer in fast.values:
        assert fast.values[layer] == pytest.approx(slow.values[layer], abs=1e-10)
        assert fast.s_max[layer] == pytest.approx(slow.s_max[layer], abs=1e-10)
        assert fast.s_min[layer] == pytest.approx(slow.s_min[layer], abs=1e-10)
        for ratio in fast.details["delta_norm_ratio"][layer]:
            assert ratio <= eps * (1 + 1e-6)
    if eps < 0.01:  # the projection did bind
        assert max(max(r) for r in fast.details["delta_norm_ratio"].values()) > 0.99 * eps


def test_drop_last_changes_the_exact_origin() -> None:
    """drop_last=False sees every image: its exact origin is the eval-mode mean over all of them
    (augmentation off), while drop_last=True measures a random whole-batch subset."""
    x, y = data(50)
    model = build("tiny").double().eval()
    with torch.no_grad():
        full = F.cross_entropy(model((x.float() / 255).double()), y).item()
    origins = {}
    for drop in (False, True):
        pipe = SALData(batch_size=16, augment="none", drop_last=drop)
        origins[drop] = compat_sal(SALTask(model, x, y, RT, pipe, dtype=F64), rounds=1).origin
    assert origins[False] == pytest.approx(full, abs=1e-12)
    assert origins[True] != pytest.approx(full, abs=1e-6)


def test_projection_and_sign_rule() -> None:
    theta_norm = torch.tensor(2.0, dtype=F64)
    deltas = torch.stack([torch.full((3, 4), 1.0, dtype=F64), torch.full((3, 4), 1e-4, dtype=F64)])
    project_rows(deltas, theta_norm, 0.05)
    assert deltas[0].norm() == pytest.approx(0.1, rel=1e-12)  # projected onto ε‖θ‖
    assert deltas[1].norm() == pytest.approx(1e-4 * 12**0.5)  # inside: untouched
    assert sal_from_extremes(1.5, 0.9, 1.0) == pytest.approx((0.5, 0.5, 0.1))
    assert sal_from_extremes(1.1, 0.7, 1.0) == pytest.approx((0.3, 0.1, 0.3))
    assert sal_from_extremes(1.0, 1.0, 1.0) == (0.0, 0.0, 0.0)


def test_official_origin_zero_falls_back_to_exact() -> None:
    # origin_loss == 0 (the official cutmix/mixup case): the eval-mode pass value is used
    x, y = data(48)
    kw = dict(rt=RT, data=PIPE, engine="compat", dtype=F64, rounds=1)
    zero = run_sal(build("tiny"), x, y, origin_loss=0.0, **kw)
    exact = run_sal(build("tiny"), x, y, origin="exact", **kw)
    assert zero.origin == exact.origin and zero.values == exact.values


# ----------------------------------------------------------------------------- data + origin
def _per_image_mean(losses: list[list[float]]) -> float:
    """The oracle: every image's loss averaged over the epoch, in a plain loop."""
    flat = [v for batch in losses for v in batch]
    return sum(flat) / len(flat)


def test_official_origin_is_the_running_mean_with_and_without_drop_last() -> None:
    from uebench.train.classification import paper_formula_loss

    # drop_last=True: the paper's loader, every batch full; its formula and ours agree
    full = [[1.0, 1.0, 1.0, 1.0], [2.0, 2.0, 2.0, 2.0], [3.0, 2.0, 4.0, 3.0]]
    means, sizes = [sum(b) / len(b) for b in full], [len(b) for b in full]
    assert official_running_loss(means, sizes) == pytest.approx(_per_image_mean(full))
    assert paper_formula_loss(means, sizes) == pytest.approx(_per_image_mean(full))
    # drop_last=False: a short last batch; the origin stays the per-image running mean, where the
    # paper's formula, (1 + 2 + 3) / 10 * 2 = 1.2, would deflate it by 2 * 3 / 10
    short = [[1.0] * 4, [2.0] * 4, [3.0, 3.0]]
    means, sizes = [sum(b) / len(b) for b in short], [len(b) for b in short]
    assert official_running_loss(means, sizes) == pytest.approx(_per_image_mean(short)) == 1.8
    assert paper_formula_loss(means, sizes) == pytest.approx(1.2)


def test_fit_records_the_running_mean_as_the_official_origin() -> None:
    # 10 images in batches of 4: a short last batch (drop_last=False, uebench's default)
    from uebench.train.classification import fit

    x, y = data(10)
    rows = fit(build("tiny"), x, y, cfg=TrainCfg(epochs=1, batch_size=4), rt=RT)
    assert rows[0]["train_loss_official"] == pytest.approx(rows[0]["train_loss"], rel=1e-5)


def test_official_running_loss_refuses_bad_input() -> None:
    with pytest.raises(ValueError):
        official_running_loss([1.0], [4, 4])
    with pytest.raises(ValueError):
        official_running_loss([], [])


def test_sal_data_pipeline() -> None:
    cfg = TrainCfg(batch_size=32, augment="flip", crop_padding=3, drop_last=True)
    assert SALData.from_train_cfg(cfg) == SALData(32, "flip", 3, True)
    assert SALData.coerce(cfg) == SALData.coerce(SALData(32, "flip", 3, True))
    assert SALData.official() == SALData(256, "crop_flip", 4, True)
    for bad in (dict(batch_size=0, augment="none"), dict(batch_size=8, augment="cutout"),
                dict(batch_size=8, augment="none", crop_padding=-1)):
        with pytest.raises(ConfigError):
            SALData(**bad)
    with pytest.raises(ConfigError, match="data pipeline"):
        SALData.coerce(None)
    x, y = data(8)
    with pytest.raises(ConfigError, match="no batch"):  # 8 images, bs 16, drop_last
        measure_sal(build("tiny"), x, y, rt=RT, data=PIPE, engine="compat", rounds=1)
    with pytest.raises(TypeError):
        measure_sal(build("tiny"), x, y, rt=RT)  # no silent default pipeline


# ----------------------------------------------------------------------------- API + callback
def test_api_validation() -> None:
    x, y = data(32)
    with pytest.raises(UnknownNameError):
        measure_sal(build("tiny"), x, y, rt=RT, data=PIPE, engine="nope")
    with pytest.raises(ConfigError, match="unknown option"):
        measure_sal(build("tiny"), x, y, rt=RT, data=PIPE, engine="compat", steps=3)
    with pytest.raises(ValueError, match="origin_loss"):
        measure_sal(build("tiny"), x, y, rt=RT, data=PIPE, origin="official")
    with pytest.raises(ConfigError, match="unknown option"):
        SALCallback("fast", rounds=3)
    values = measure_sal(build("tiny"), x, y, rt=RT, data=PIPE, layers=["net.fc"], probe_size=16)
    assert list(values) == ["net.fc"]


@pytest.mark.parametrize("engine", ENGINES)
def test_callback_leaves_training_untouched(engine: str) -> None:
    x, y = data(64)
    cfg = TrainCfg(epochs=2, batch_size=16, lr=0.05, milestones=(), crop_padding=2)
    plain = build("tiny")
    fit(plain, x, y, cfg=cfg, rt=RT)
    measured = build("tiny")
    callback = SALCallback(engine, **SAL_ENGINES.meta(engine)["smoke_options"])
    rows = fit(measured, x, y, cfg=cfg, rt=RT, callbacks=[callback])
    for key, value in plain.state_dict().items():
        assert torch.equal(value, measured.state_dict()[key]), key
    assert measured.training
    assert all(p.requires_grad for p in measured.parameters())
    default_origin = SAL_ENGINES.meta(engine)["default_origin"]
    for row in rows:
        assert set(row["sal"]) == {"net.conv1", "net.conv2", "net.fc"}
        assert row["sal_engine"] == engine and row["sal_seconds"] >= 0
        assert row["sal_origin_kind"] == ("official" if default_origin == "official" else "exact")
    if default_origin == "official":
        assert rows[0]["sal_origin"] == rows[0]["train_loss"]
    ctx = EpochContext(rows[-1]["epoch"], measured, rows[-1]["train_loss"],
                       rows[-1]["train_acc"], x, y, cfg, RT, "fp32")
    assert callback(ctx)["sal"] == rows[-1]["sal"]  # deterministic from (seed, epoch)


def test_callback_uses_batch_losses_and_the_run_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return SimpleNamespace(values={}, origin=kwargs["origin_loss"], seconds=0.0,
                               details={"origin_kind": "official"})

    monkeypatch.setattr("uebench.learnability.sal.run_sal", spy)
    x, y = data(8)
    cfg = TrainCfg(batch_size=4, augment="flip", crop_padding=1, drop_last=True)
    ctx = SimpleNamespace(epoch=1, model=None, train_loss=9.0, x_train=x, y_train=y, cfg=cfg,
                          rt=RT, batch_losses=[1.0, 2.0, 3.0], batch_sizes=[4, 4, 2])
    row = SALCallback("compat")(ctx)
    # official_running_loss of the batches (the per-image running mean 1.8), not train_loss
    assert row["sal_origin"] == pytest.approx(1.8)
    assert seen["data"] == SALData(4, "flip", 1, True)
    del ctx.batch_losses, ctx.batch_sizes  # today's EpochContext: fall back to train_loss
    assert SALCallback("compat")(ctx)["sal_origin"] == 9.0


def _expand_layers(cell: str) -> list[str]:
    """docs/sal.md's layer cells: `a.{0,1}.conv{1,2}` (braces expand in order) or
    `layer2.0.conv1`, `.conv2` (a leading dot replaces the first name's last part)."""
    spans = re.findall(r"`([^`]*)`", cell)
    first = spans[0]
    parts = re.split(r"\{([^}]*)\}", first)
    names = ["".join(p) for p in itertools.product(
        *[[x] if i % 2 == 0 else x.split(",") for i, x in enumerate(parts)])]
    stem = first.rsplit(".", 1)[0] if "." in first else ""
    return names + [stem + s if s.startswith(".") else s for s in spans[1:]]


def test_docs_cost_tables_are_the_computed_ones():
    # docs/sal.md, "Cost model": every layer's weights, own MACs and suffix share S_l / F of the
    # CIFAR ResNet-18, and the paper-scale cost table, as the code computes them today
    bench = load_benchmark("sal_engines")
    forward, suffix = bench.paper_scale_macs()
    page = (Path(__file__).resolve().parents[1] / "docs" / "sal.md").read_text(encoding="utf-8")
    section = page.split("## Cost model")[1].split("\n## ")[0]
    assert f"F = {forward:,} MACs" in section.replace("\n", " ")
    assert f"ΣS = {sum(suffix.values()) / forward:.2f} F" in section
    (_, layers), (_, cost) = parse_markdown_tables(section)
    assert cost == bench.paper_scale_table(forward, suffix)[1]

    model = get_model("resnet18")
    modules = dict(model.named_modules())
    own: dict[str, int] = {}
    hooks = [modules[n].register_forward_hook(
        lambda m, i, o, n=n: own.__setitem__(n, m.weight.numel() * (
            o.shape[2] * o.shape[3] if o.dim() == 4 else 1))) for n in suffix]
    model.eval()(torch.rand(1, 3, 32, 32))
    for h in hooks:
        h.remove()

    def values(cell: str, count: int) -> list[str]:
        cell = cell.strip()
        return [cell.removesuffix(" each")] * count if cell.endswith(" each") else [
            c.strip() for c in re.split(r" / |, ", cell)]

    seen = []
    for name_cell, weights, macs, shares in layers:
        names = ["net." + n for n in _expand_layers(name_cell)]
        for n, w, mac, share in zip(names, values(weights, len(names)), values(macs, len(names)),
                                    values(shares, len(names)), strict=True):
            assert int(w.replace(",", "")) == modules[n].weight.numel(), n
            assert (f"{own[n] / 1e6:.1f}M" if mac.endswith("M") else f"{own[n]:,}") == mac, n
            ratio = suffix[n] / forward
            assert (ratio < 0.005) if share == "≈ 0" else f"{ratio:.2f}" == share, n
        seen += names
    assert sorted(seen) == sorted(suffix)


def test_sal_engines_tables_by_hand():
    # benchmarks/sal_engines.py's stored tables (docs/sal.md, "Measured (CPU)"): ratios against
    # compat and the agreement of fast with the strong search, on numbers chosen by hand
    bench = load_benchmark("sal_engines")
    case = bench.Case(name="toy", dataset="d", model="m", width=1.0, train_size=100, epochs=1,
                      measure=[1], batch_size=8, padding=0, rounds=2, strong_steps=5,
                      strong_restarts=0)
    case.seconds = {"compat": [2.0], "fast": [1.0], "strong": [8.0]}
    case.cpu_seconds = {"compat": [1.0], "fast": [0.5], "strong": [4.0]}
    case.macs = {"compat": 4e9, "fast": 1e9, "strong": 16e9, "compat@10": 20e9}
    case.results = {"fast": [{"a": 1.0, "b": 2.0, "c": 3.0}],
                    "strong": [{"a": 1.0, "b": 2.5, "c": 3.1}],
                    "compat": [{"a": 0.5, "b": 1.0, "c": 2.0}]}
    args = SimpleNamespace(eval_size=20, probe_size=50, steps=3)
    header, rows = bench.cost_table([case], args)
    fast = dict(zip(header, rows[1]))
    assert fast["settings"] == "K=3, probe 50, held-out 20"
    assert (fast["wall vs compat"], fast["CPU vs compat"], fast["MACs vs compat"]) == (
        "0.50x", "0.50x", "0.250x")
    assert fast["compat @10 rounds / engine MACs"] == "20.00"
    header, (row,) = bench.agreement_table([case])
    got = dict(zip(header, row))
    # same order on every layer: ρ = 1; b reaches 2.0 / 2.5 = 80 % of strong, a and c ≥ 95 %
    assert got["ρ fast~strong"] == "1.000" and got["fast ≥ 95 % strong"] == "66.7%"
