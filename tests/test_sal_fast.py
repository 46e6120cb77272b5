"""Fast SAL engine (uebench.learnability.fast): first-order oracle, the ball, options, held-out
scoring, rescoring and the cost model. Tiny float64 models, CPU, seconds."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from tests.test_sal import PIPE, RT, build, data
from uebench.learnability import SuffixPlan, measure_sal, run_sal
from uebench.learnability import fast as fast_module
from uebench.learnability.fast import fast_sal, strong_reference
from uebench.learnability.sal import cost_model, suffix_macs
from uebench.learnability.scoring import rescore, sal_from_losses, split_probe, stratified
from uebench.learnability.task import SALTask, measuring

pytestmark = pytest.mark.timeout(120)
F64 = torch.float64


def _full_gradient_norms(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict:
    model = model.double().eval()
    logits = model((x.float() / 255).double())
    names = SuffixPlan(model).layers
    weights = [model.get_submodule(n).weight for n in names]
    grads = torch.autograd.grad(F.cross_entropy(logits, y), weights)
    return {n: (g.norm() * w.norm()).item() for n, g, w in zip(names, grads, weights)}


def test_fast_small_eps_matches_first_order() -> None:
    x, y = data(64)
    eps = 1e-4
    res = measure_sal(build("tiny"), x, y, rt=RT, data=PIPE, eps=eps, dtype=F64, probe_size=None)
    detailed = run_sal(build("tiny"), x, y, rt=RT, data=PIPE, eps=eps, dtype=F64,
                       probe_size=None)
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
    plain = fast_sal(task, steps=5, probe_size=None, etas=fast_module.strong_step_sizes(5))
    for layer in plain.values:  # same first five steps + more: never below
        assert strong.values[layer] >= plain.values[layer] - 1e-12


def test_split_probe_is_seeded_and_disjoint() -> None:
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    probe, held, kind = split_probe(100, 30, 50, gen())
    assert kind == "held_out" and len(probe) == 30 and len(held) == 50
    assert not set(probe.tolist()) & set(held.tolist())
    assert torch.equal(split_probe(100, 30, None, gen())[0], probe)  # same probe either way
    assert split_probe(100, 30, 500, gen())[1].numel() == 70  # all that remain
    assert split_probe(100, 100, 50, gen())[1:] == (None, "probe")  # probe = every image
    assert split_probe(100, 30, "all", gen())[1:][1] == "all"
    assert split_probe(100, 30, "all", gen())[1].numel() == 70
    with pytest.raises(ValueError):
        split_probe(100, 0, None, gen())


def test_held_out_scoring_is_the_stratified_full_set_estimate() -> None:
    """eval_size=E: probe part exact + held-out sample for the rest, weighted by image counts;
    with every remaining image held out it is the exact full-set value of the perturbations."""
    x, y = data(64)
    task = SALTask(build("tiny"), x, y, RT, eps=0.05, dtype=F64)
    searched = fast_sal(task, probe_size=24, eval_size=None, return_deltas=True)
    held_res = fast_sal(task, probe_size=24, eval_size=30)
    assert searched.details["scored_on"] == "probe" and held_res.details["scored_on"] == "held_out"
    assert held_res.details["eval_size"] == 30
    probe, held, _ = split_probe(64, 24, 30, task.generator(100))
    parts = [rescore(SALTask(task.model, x[i], y[i], RT, dtype=F64), searched.details["deltas"])
             for i in (probe, held)]
    for layer, value in searched.values.items():  # probe part: the search's own values
        assert value == pytest.approx(parts[0].values[layer], abs=1e-12)
    losses, clean = stratified([(p.details["losses"], p.details["clean"], w)
                                for p, w in zip(parts, (24, 40))])
    expected = sal_from_losses(losses, clean, "", 0.0)
    assert held_res.origin == pytest.approx(expected.origin, abs=1e-12)
    for layer, value in held_res.values.items():
        assert value == pytest.approx(expected.values[layer], abs=1e-12)
    full = fast_sal(task, probe_size=24, eval_size="all")
    truth = rescore(task, searched.details["deltas"])
    assert full.details["scored_on"] == "all" and full.details["eval_size"] == 40
    for layer, value in full.values.items():
        assert value == pytest.approx(truth.values[layer], abs=1e-12)


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
    scored = fast_sal(task, probe_size=32, eval_size=16)
    assert all(v >= 0 for v in scored.values.values())
    assert scored.origin != base.origin  # probe + held-out images, not the 32-image probe


def test_bf16_autocast_runs() -> None:
    x, y = data(32)
    values = measure_sal(build("tiny"), x, y, rt=RT, data=PIPE, precision="bf16", probe_size=32,
                         steps=2)
    assert all(torch.isfinite(torch.tensor(v)) and v >= 0 for v in values.values())


@pytest.mark.parametrize(("engine", "opts"), [
    ("compat", {"rounds": 1}), ("fast", {"probe_size": 32, "restarts": 1}),  # held-out 32
    ("fast", {"probe_size": 32, "eval_size": None, "steps": 5}),
])
def test_cost_model_matches_flop_counter(engine: str, opts: dict) -> None:
    model, (x, y) = build("tiny"), data(64)
    with measuring(model, torch.device("cpu")) as m:
        forward, suffix = suffix_macs(SuffixPlan(m), torch.rand(2, 3, 16, 16))
    with FlopCounterMode(display=False) as counter:
        run_sal(model, x, y, rt=RT, engine=engine, data=PIPE, **opts)
    predicted = cost_model(forward, suffix, n_train=64, batch_size=16,
                           **{k: v for k, v in opts.items()})[engine]
    assert counter.get_total_flops() / 2 == pytest.approx(predicted, rel=0.05)
