"""The multi-task commands end to end on tiny settings: train (also as ``uebench train --tasks``),
poison, evaluate (per-task UD + Fig. 4), cross (Fig. 8), plot."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from uebench.cli import dispatch, parse
from uebench.multitask import cli

pytestmark = pytest.mark.timeout(180)
TINY = ["data.options.n=48", "data.options.image_size=16", "data.test_size=24",
        "train.batch_size=16", "model.decoder_channels=8", "--epochs", "2", "--quiet"]
EM = ["steps=2", "max_rounds=2", "train_steps=2", "batch_size=16", "decoder_channels=8"]


def run(*argv: str) -> int:
    """A command through the parser and its registered handler, errors raised (not printed)."""
    return dispatch(parse(argv))


def test_uebench_train_with_tasks(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """What ``uebench train --tasks ...`` hands over: the train parser's namespace."""
    args = argparse.Namespace(
        dataset=None, data_dir=None, train_size=None, test_size=None, seed=None, device=None,
        quiet=True, model=None, epochs=2, defense=None, config=None, poison=None,
        overrides=TINY[:5], out=str(tmp_path / "run"), tasks="scene,segment,depth,keypoints")
    assert cli.cmd_multitask_train(args) == 0
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text()
            .splitlines()]
    assert len(rows) == 2 and {"test/scene/accuracy", "test/segment/miou", "test/depth/abs_rel",
                               "test/keypoints/keypoint_error"} <= set(rows[-1])
    assert "done" in capsys.readouterr().out


def test_poison_evaluate_cross_plot(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    em = [a for p in EM for a in ("--param", p)]
    assert run("multitask", "poison", "--attack", "em", "--param", "tasks=scene", *em,
               "--out", str(tmp_path / "em"), *TINY) == 0
    assert run("multitask", "poison", "--attack", "ops", "--out", str(tmp_path / "ops"),
               *TINY) == 0
    assert run("multitask", "evaluate", "--poisons", str(tmp_path / "em"), str(tmp_path / "ops"),
               "--out", str(tmp_path / "eval"), "sal.options.probe_size=8",
               "sal.options.eval_size=8", "sal.options.steps=1", *TINY) == 0
    result = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert [r["name"] for r in result["runs"]] == ["clean", "em-scene", "ops"]
    assert set(result["beta"]) == {"scene", "segment", "depth", "keypoints"}
    assert all(isinstance(r["per_task"]["depth"]["ud"], float) for r in result["runs"][1:])
    for name in ("task_similarity.png", "task_learnable.png"):
        assert (tmp_path / "eval" / "figures" / name).stat().st_size > 0
    gen = [a for p in EM for a in ("--poison-param", p)]
    assert run("multitask", "cross", "--poisons", str(tmp_path / "ops"), "--generate", "em:all",
               *gen, "--targets", "scene,depth", "--out", str(tmp_path / "cross"), *TINY) == 0
    table = json.loads((tmp_path / "cross" / "results.json").read_text())
    assert [r["poison"] for r in table["rows"]] == ["ops", "em-all"]
    assert [c["key"] for c in table["columns"]] == ["scene/accuracy", "depth/abs_rel",
                                                    "depth/rmse"]
    cell = table["rows"][0]["cells"]["depth/abs_rel"]
    assert cell["diff"] == pytest.approx(cell["poisoned"] - cell["clean"])
    assert cell["harm"] == cell["diff"]  # lower is better: a higher error is harm
    acc = table["rows"][0]["cells"]["scene/accuracy"]
    assert acc["harm"] == -acc["diff"]
    assert (tmp_path / "cross" / "figures" / "cross_task.png").is_file()
    assert (tmp_path / "cross" / "poisons" / "em-all" / "manifest.json").is_file()
    # two training seeds over the same images and poisons: per-seed differences and their mean
    assert run("multitask", "cross", "--poisons", str(tmp_path / "ops"), "--targets", "scene",
               "--seeds", "0,1", "--out", str(tmp_path / "seeds"), *TINY) == 0
    cell = json.loads((tmp_path / "seeds" / "results.json").read_text())["rows"][0]["cells"][
        "scene/accuracy"]
    assert len(cell["diff_per_seed"]) == 2 and cell["diff_summary"]["n"] == 2
    assert cell["diff"] == pytest.approx(sum(cell["diff_per_seed"]) / 2)
    assert (tmp_path / "seeds" / "runs" / "seed1" / "scene" / "ops" / "summary.json").is_file()
    capsys.readouterr()
    assert run("multitask", "plot", str(tmp_path / "cross"), "--out", str(tmp_path / "f")) == 0
    assert "cross_task.png" in capsys.readouterr().out
    assert run("multitask", "plot", str(tmp_path / "eval" / "runs" / "ops"), "--out",
               str(tmp_path / "g")) == 0  # one run with per-task SAL: Fig. 4 of that run
    assert (tmp_path / "g" / "task_similarity.png").is_file()
    from uebench.multitask.plots import supports

    assert supports(tmp_path / "eval") and supports(tmp_path / "cross")
    assert supports(tmp_path / "eval" / "runs" / "clean") and not supports(tmp_path / "ops")
