"""The learnability statistics (one registry), the paired inference against a control, and the
random-noise controls: each checked against a plain computation written here."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats as scipy_stats

from uebench.cli import main
from uebench.controls import needed_controls
from uebench.learnability.distance import ud as paper_ud
from uebench.learnability.paired import match_controls, paired_difference
from uebench.learnability.report import RunRecord
from uebench.learnability.statistics import STATISTICS, Pair, compute_statistics, statistic_names
from uebench.learnability.statistics.probe import fit_probe
from uebench.learnability.statistics.sal_ratio import symmetric_ratio

DOCS = Path(__file__).resolve().parents[1] / "docs"
LAYERS = [f"l{i}" for i in range(6)]


def _run(name: str, sal: np.ndarray, accs: list[float]) -> RunRecord:
    rows = [{"epoch": e + 1, "train_loss": 1.0, "test_acc": accs[e],
             "sal": dict(zip(LAYERS, map(float, sal[e])))} for e in range(sal.shape[0])]
    return RunRecord(name=name, rows=rows, summary={"test_acc": accs[-1]})


@pytest.fixture
def runs():
    rng = np.random.default_rng(0)
    clean = _run("clean", rng.gamma(2.0, 0.05, (8, 6)), [0.5, 0.6, 0.7, 0.75, 0.8, 0.8, 0.82, 0.83])
    sal = rng.gamma(2.0, 0.03, (8, 6))
    sal[2, 1], sal[3, 4], sal[5, 0] = 0.0, -0.02, 0.0  # zero and negative SAL happen
    poisoned = _run("em", sal, [0.3, 0.4, 0.2, 0.3, 0.35, 0.4, 0.4, 0.41])
    return clean, poisoned


@pytest.mark.parametrize("name", statistic_names())
def test_every_statistic_is_declared_and_documented(name):
    info = STATISTICS.get(name)
    assert info.less in ("lower", "higher") and info.label and info.description
    assert info.reads == "sal" or info.reads.startswith(("sal:", "accuracy", "data"))
    # docs/ud.md has a paragraph for it: its name in backticks at the start of a bullet
    assert re.search(rf"^- \*\*`{re.escape(name)}`\*\*", (DOCS / "ud.md").read_text(), re.M), \
        f"docs/ud.md has no '- **`{name}`**' paragraph"


@pytest.mark.parametrize("name", statistic_names())
def test_every_statistic_reads_a_pair(name, runs):
    clean, poisoned = runs
    for pair in (Pair.of(clean, clean, is_clean=True), Pair.of(clean, poisoned)):
        value = STATISTICS.get(name).fn(pair)
        assert value is None or math.isfinite(value)


def test_paired_sal_statistics_are_neutral_on_the_clean_run(runs):
    clean, _ = runs
    values = compute_statistics(clean, [])[0]
    assert values["ud"] == 1.0 and values["sal_ratio"] == 0.0
    assert values["lp_gap"] == 0.0 and values["lp_gap_late"] == 0.0
    assert values["ud_bn"] is None  # no post-hoc tag on rows without a run directory


def test_statistics_match_plain_computations(runs):
    clean, poisoned = runs
    values = compute_statistics(clean, [poisoned])[1]
    c = np.array([[r["sal"][k] for k in LAYERS] for r in clean.rows])
    p = np.array([[r["sal"][k] for k in LAYERS] for r in poisoned.rows])
    # UD: the module that implements Eq. 5
    assert values["ud"] == pytest.approx(paper_ud(clean.rows, poisoned.rows))
    # symmetric SAL ratio, entry by entry in a plain loop
    total = 0.0
    for e in range(8):
        for j in range(6):
            den = abs(p[e, j]) + abs(c[e, j])
            total += 0.0 if den == 0 else (p[e, j] - c[e, j]) / den
    assert values["sal_ratio"] == pytest.approx(total / 48)
    # learnable-layer gap with beta from the clean run's per-epoch 2-means midpoints
    beta = Pair.of(clean, poisoned).beta
    gaps = [(sum(v > beta for v in p[e]) - sum(v > beta for v in c[e])) / 6 for e in range(8)]
    assert values["lp_gap"] == pytest.approx(sum(gaps) / 8)
    assert values["lp_gap_late"] == pytest.approx(sum(gaps[4:]) / 4)
    assert values["acc"] == 0.41 and values["peak_acc"] == 0.41


def test_symmetric_ratio_is_the_squashed_log_ratio_and_handles_zero_and_sign():
    p, c = np.array([[0.2, 0.05]]), np.array([[0.1, 0.4]])
    expected = np.mean(np.tanh(np.log(p / c) / 2))
    assert symmetric_ratio(p, c) == pytest.approx(expected)
    assert symmetric_ratio(np.zeros((1, 2)), np.zeros((1, 2))) == 0.0
    assert symmetric_ratio(np.array([[-0.1]]), np.array([[0.1]])) == -1.0


def test_paired_difference_against_a_hand_computed_t_interval():
    run, control = [0.30, 0.40, 0.20, None], [0.50, 0.55, 0.45, 0.5]
    p = paired_difference(run, control, less="lower")
    d = np.array([-0.20, -0.15, -0.25])
    half = scipy_stats.t.ppf(0.975, 2) * d.std(ddof=1) / math.sqrt(3)
    assert p["n"] == 3 and p["mean"] == pytest.approx(d.mean())
    assert p["ci_high"] == pytest.approx(d.mean() + half)
    assert p["separated"] is True and p["direction"] == "less"
    assert paired_difference([0.5, 0.6], [0.55, 0.5])["separated"] is False
    assert paired_difference([0.9, 1.0], [0.5, 0.55], less="higher")["separated"] is True
    assert paired_difference([0.1], [0.5])["separated"] is None  # one seed: no interval


def _ident(attack, norm, radius, draw=0):
    return {"attack": attack, "norm": norm, "radius": radius, "draw": draw,
            "control": attack == "random"}


def test_controls_are_matched_by_budget_norm_and_draw():
    idents = {"clean": None, "em": _ident("em", "linf", 8 / 255),
              "ops": _ident("ops", "l0", 1.0), "lsp": _ident("lsp", "l2", 0.66),
              "tap": _ident("tap", "linf", 8 / 255), "ar": _ident("ar", "l2", 1.0),
              "random": _ident("random", "linf", 8 / 255),
              "random-b": _ident("random", "linf", 8 / 255, draw=1),
              "random-l2": _ident("random", "l2", 0.66), "random-l2-1": _ident("random", "l2", 1.0),
              "random-l0": _ident("random", "l0", 1.0), "dc": _ident("dc", None, None)}
    m = match_controls(idents)
    assert m["em"] == m["tap"] == m["random-b"] == "random"
    assert m["ops"] == "random-l0" and m["lsp"] == "random-l2" and m["ar"] == "random-l2-1"
    assert m["clean"] is m["random"] is m["dc"] is None


def _manifest(attack, norm, eps, **params):
    return {"attack": attack, "params": params, "budget": {"norm": norm, "eps": eps},
            "measured": {"l0_max": 1.0}, "dataset": "synthetic", "n": 64, "seed": 0}


def test_needed_controls_one_per_budget_and_reuse_of_given_ones():
    em, ops = _manifest("em", "linf", 8 / 255), _manifest("ops", "l0", None)
    lsp = _manifest("lsp", "l2", 0.66)
    controls, notes = needed_controls([em, ops, lsp, _manifest("tap", "linf", 8 / 255)])
    assert [(c["name"], c["params"]) for c in controls] == [
        ("random", {"norm": "linf", "eps": 8 / 255}), ("random-l0", {"norm": "l0", "eps": 1}),
        ("random-l2", {"norm": "l2", "eps": 0.66})]
    given = _manifest("random", "linf", 8 / 255)
    controls, _ = needed_controls([em, given])
    assert controls == []
    _, notes = needed_controls([_manifest("imported", None, None)])
    assert notes and "declares no budget" in notes[0]


def test_random_controls_keep_their_budgets():
    from uebench.attacks.base import run_attack
    from uebench.runtime import Runtime

    x = torch.full((20, 3, 8, 8), 0.5)
    y = torch.arange(20) % 10
    rt = Runtime(seed=3, device=torch.device("cpu"))
    linf, _ = run_attack("random", x, y, num_classes=10, rt=rt)
    # draw 0 of the linf noise is the historical stream: the same numbers as before controls
    gen = rt.generator(7001, 0)
    expected = (torch.rand((20, 3, 8, 8), generator=gen) * 2 - 1) * (8 / 255)
    assert (linf - expected).abs().max() < 1e-6  # float rounding of x + delta - x only
    other, _ = run_attack("random", x, y, num_classes=10, rt=rt, params={"draw": 1})
    assert not torch.allclose(other, linf) and other.abs().max() <= 8 / 255 + 1e-7
    l2, _ = run_attack("random", x, y, num_classes=10, rt=rt, params={"norm": "l2", "eps": 0.4})
    assert torch.allclose(l2.flatten(1).norm(dim=1), torch.full((20,), 0.4), atol=1e-5)
    l0, _ = run_attack("random", x, y, num_classes=10, rt=rt, params={"norm": "l0", "eps": 2})
    changed = (l0.abs().amax(dim=1) > 0).flatten(1).sum(1)
    assert changed.tolist() == [2] * 20
    assert set((x + l0).unique().tolist()) <= {0.0, 0.5, 1.0}


def test_probe_learns_a_linear_shortcut_and_not_noise():
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(400) % 4
    x = torch.randint(0, 256, (400, 1, 6, 6), generator=gen, dtype=torch.uint8)
    x[:, 0, 0, :4] = 0
    x[torch.arange(400), 0, 0, y] = 255  # the label written into one pixel: a linear feature
    acc = fit_probe("linear", x[:300], y[:300], x[300:], y[300:], classes=4, seed=0)
    assert acc >= 0.95
    assert fit_probe("linear", x[:300], y[:300], x[300:], y[300:], classes=4, seed=0) == acc
    noise = torch.randint(0, 256, (400, 1, 6, 6), generator=gen, dtype=torch.uint8)
    assert fit_probe("mlp", noise[:300], y[:300], noise[300:], y[300:], classes=4, seed=0) < 0.5


DATA = ["--dataset", "synthetic", "--train-size", "64", "--test-size", "32", "--quiet"]
RUN = [*DATA, "--model", "tiny", "--epochs", "2", "sal.options.probe_size=32",
       "train.batch_size=32"]


def test_evaluate_trains_a_control_per_budget_and_reads_every_poison_against_it(tmp_path, capsys):
    ops = tmp_path / "ops"
    assert main(["poison", "generate", "--attack", "ops", *DATA, "--out", str(ops)]) == 0
    out = tmp_path / "e"
    assert main(["evaluate", *RUN, "--poisons", str(ops), "--seeds", "0,1", "--out",
                 str(out)]) == 0
    printed = capsys.readouterr().out
    assert "## Against the control" in printed and "ops − random-l0" in printed
    result = json.loads((out / "results.json").read_text())
    roles = {r["name"]: r["role"] for r in result["runs"]}
    assert roles == {"clean": "clean", "ops": "poisoned", "random-l0": "control"}
    row = next(r for r in result["runs"] if r["name"] == "ops")
    control = next(r for r in result["runs"] if r["name"] == "random-l0")
    assert row["control"] == "random-l0"
    for name in ("ud", "sal_ratio", "acc", "probe_linear"):
        diffs = [a - b for a, b in zip(row["statistics_per_seed"][name],
                                       control["statistics_per_seed"][name])]
        assert row["paired"][name]["per_seed"] == pytest.approx(diffs)
    manifest = json.loads((out / "controls" / "random-l0" / "manifest.json").read_text())
    assert manifest["params"]["norm"] == "l0" and manifest["budget"]["eps"] == 1
    # the control opt-out
    out2 = tmp_path / "n"
    assert main(["evaluate", *RUN, "--poisons", str(ops), "--no-control", "--out",
                 str(out2)]) == 0
    names = [r["name"] for r in json.loads((out2 / "results.json").read_text())["runs"]]
    assert names == ["clean", "ops"]


def test_recalibrated_ud_reads_the_bn_tag_of_both_runs(tmp_path):
    from uebench.learnability.report import recompute

    ops = tmp_path / "ops"
    assert main(["poison", "generate", "--attack", "ops", *DATA, "--out", str(ops)]) == 0
    out = tmp_path / "e"
    assert main(["evaluate", *RUN, "--poisons", str(ops), "--no-control", "--recalibrate-bn",
                 "--out", str(out)]) == 0
    result = json.loads((out / "results.json").read_text())
    runs = out / "runs"
    # the oracle: the paper's UD recomputed from the post-hoc tag 'bn' of the same runs
    tagged = recompute(runs / "clean", [runs / "ops"], sal_tag="bn")
    assert result["runs"][1]["statistics"]["ud_bn"] == pytest.approx(tagged["runs"][1]["ud"])
    settings = (runs / "ops" / "sal" / "bn.yaml").read_text()
    assert "recalibrate_bn: true" in settings
