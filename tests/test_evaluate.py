"""Algorithm 1 end to end on tiny data: several seeds with intervals, defended evaluations with β
from the undefended (paper Table 2) or the defended clean run."""

from __future__ import annotations

import json

import pytest

from uebench.cli import main
from uebench.learnability.stats import format_summary, summarize

DATA = ["--dataset", "synthetic", "--train-size", "64", "--test-size", "32", "--quiet"]
RUN = [*DATA, "--model", "tiny", "--epochs", "2", "sal.options.probe_size=32",
       "train.batch_size=32"]


@pytest.fixture(scope="module")
def poison(tmp_path_factory):
    out = tmp_path_factory.mktemp("p") / "ops"
    assert main(["poison", "generate", "--attack", "ops", *DATA, "--out", str(out)]) == 0
    return out


def test_summarize_t_interval_and_bootstrap():
    s = summarize([1.0, 2.0, 3.0])
    assert s["mean"] == 2.0 and s["std"] == 1.0
    # t_{0.975, 2} = 4.3027: half-width 4.3027 / sqrt(3)
    assert s["ci_high"] - s["mean"] == pytest.approx(4.302653 / 3 ** 0.5, rel=1e-5)
    b = summarize([1.0, 2.0, 3.0, 4.0], method="bootstrap")
    assert 1.0 <= b["ci_low"] < b["mean"] < b["ci_high"] <= 4.0
    assert summarize([5.0])["std"] is None and summarize([])["mean"] is None
    assert format_summary(s) == "2.000 ± 1.000 [-0.484, 4.484]"


def test_several_seeds_give_intervals(poison, tmp_path, capsys):
    out = tmp_path / "e"
    assert main(["evaluate", *RUN, "--poisons", str(poison), "--seeds", "0,1,2",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "95 % t-interval" in printed
    result = json.loads((out / "results.json").read_text())
    assert result["seeds"] == [0, 1, 2]
    ops = next(r for r in result["runs"] if r["name"] == "ops")
    assert ops["ud"]["n"] == 3 and ops["ud"]["ci_low"] <= ops["ud"]["mean"] <= ops["ud"]["ci_high"]
    per_seed = [json.loads((out / f"seed{s}" / "results.json").read_text()) for s in (0, 1, 2)]
    assert ops["ud_per_seed"] == [t["runs"][1]["ud"] for t in per_seed]
    # every seed trains on the same images (the poison's subset), from its own initial weights
    configs = [(out / f"seed{s}" / "runs" / "clean" / "config.yaml").read_text() for s in range(3)]
    assert all("subset_seed: 0" in c for c in configs)
    assert "init_seed: 1" in configs[1]


@pytest.mark.parametrize(("defense", "suffix"), [("jpeg", "jpeg"), ("at:steps=2", "at-steps-2")])
def test_defended_evaluations_write_ud_for_each_poison(poison, tmp_path, defense, suffix):
    out = tmp_path / "d"
    assert main(["evaluate", *RUN, "--poisons", str(poison), "--defense", defense,
                 "--out", str(out)]) == 0
    result = json.loads((out / "results.json").read_text())
    # the control at OPS's budget is trained under the same defense and read against OPS
    assert [r["name"] for r in result["runs"]] == ["clean", f"clean+{suffix}", f"ops+{suffix}",
                                                   f"random-l0+{suffix}"]
    assert all(r["ud"] is not None for r in result["runs"][1:])
    assert result["runs"][2]["control"] == f"random-l0+{suffix}"


def test_defended_evaluation_beta_from_undefended(poison, tmp_path):
    out = tmp_path / "d"
    assert main(["evaluate", *RUN, "--poisons", str(poison), "--defense", "cutout:size=4",
                 "--no-control", "--out", str(out)]) == 0
    result = json.loads((out / "results.json").read_text())
    names = [r["name"] for r in result["runs"]]
    assert names == ["clean", "clean+cutout-size-4", "ops+cutout-size-4"]
    assert result["runs"][1]["ud"] is not None  # the defended clean run gets a UD (Table 2 row 1)
    assert any("cutout(4)" in n for n in result["notes"])
    cfg = (out / "runs" / "ops+cutout-size-4" / "config.yaml").read_text()
    assert "defense: cutout:size=4" in cfg
    out2 = tmp_path / "d2"
    assert main(["evaluate", *RUN, "--poisons", str(poison), "--defense", "cutout:size=4",
                 "--beta-from", "defended", "--no-control", "--out", str(out2)]) == 0
    result2 = json.loads((out2 / "results.json").read_text())
    assert [r["name"] for r in result2["runs"]] == ["clean+cutout-size-4", "ops+cutout-size-4"]


def test_sal_engine_from_config_key_is_used(poison, tmp_path):
    out = tmp_path / "c"
    args = [*DATA, "--model", "tiny", "--epochs", "1", "train.batch_size=32"]
    # a key=value after the options counts (argparse alone would drop it)
    assert main(["evaluate", *args, "--poisons", str(poison), "--out", str(out),
                 "sal.engine=compat", "sal.options.rounds=1"]) == 0
    row = json.loads((out / "runs" / "clean" / "metrics.jsonl").read_text().splitlines()[0])
    assert row["sal_engine"] == "compat"
