"""End to end through the CLI: poison -> export/import -> evaluate (Algorithm 1) -> ud."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from uebench.cli import main

GEN = ["poison", "generate", "--attack"]
COMMON = ["--dataset", "synthetic", "--train-size", "200", "--quiet"]


@pytest.fixture(scope="module")
def poisons(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("poisons")
    out = {}
    for method, params in (("ops", []), ("random", ["eps=8/255"])):
        out[method] = root / method
        assert (
            main([*GEN, method, *COMMON, "--out", str(out[method]), *params]) == 0
        )
    return out


def test_poison_manifest_and_budget(poisons):
    manifest = json.loads((poisons["random"] / "manifest.json").read_text())
    assert manifest["attack"] == "random" and manifest["n"] == 200
    assert manifest["measured"]["linf_max"] <= manifest["budget"]["eps"] + 1e-9
    assert (poisons["random"] / "preview.png").stat().st_size > 0
    ops = json.loads((poisons["ops"] / "manifest.json").read_text())
    assert ops["measured"]["l0_max"] == 1


def test_poison_errors(tmp_path, capsys):
    assert main([*GEN, "nope", *COMMON, "--out", str(tmp_path / "a")]) == 2
    assert "Valid attacks" in capsys.readouterr().err
    assert (
        main([*GEN, "random", *COMMON, "--out", str(tmp_path / "b"), "bogus=1"])
        == 2
    )
    assert "no parameter 'bogus'" in capsys.readouterr().err
    assert (
        main(
            [
                "poison",
                "generate",
                "--attack",
                "random",
                *COMMON,
                "--out",
                str(tmp_path / "c"),
                "--preset",
                "nope",
            ]
        )
        == 2
    )
    assert "no preset" in capsys.readouterr().err


def test_export_import_roundtrip(poisons, tmp_path):
    dest = tmp_path / "apbench"
    assert main(["poison", "export", str(poisons["ops"]), "--out", str(dest)]) == 0
    assert len(list((dest / "data").glob("*.png"))) == 200
    back = tmp_path / "back"
    assert (
        main(["poison", "import", "--format", "apbench", str(dest), *COMMON, "--out", str(back)])
        == 0
    )
    a = json.loads((poisons["ops"] / "manifest.json").read_text())
    b = json.loads((back / "manifest.json").read_text())
    assert a["fingerprint"] == b["fingerprint"] and a["measured"] == b["measured"]


def test_train_on_mismatched_poison_fails_cleanly(poisons, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--dataset",
            "synthetic",
            "--train-size",
            "100",
            "--model",
            "tiny",
            "--epochs",
            "1",
            "--poison",
            str(poisons["ops"]),
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 2
    assert capsys.readouterr().err.strip()
    assert not (out / "summary.json").exists()


@pytest.mark.parametrize("engine", ["fast", "compat"])
def test_evaluate_then_ud(poisons, tmp_path, engine, capsys):
    out = tmp_path / "eval"
    args = [
        "evaluate",
        *COMMON,
        "--model",
        "tiny",
        "--epochs",
        "2",
        "--sal-engine",
        engine,
        "--poisons",
        str(poisons["ops"]),
        str(poisons["random"]),
        "--out",
        str(out),
    ]
    if engine == "compat":
        args.append("sal.options.rounds=2")
    assert main(args) == 0
    assert "| run |" in capsys.readouterr().out
    res = json.loads((out / "results.json").read_text())
    assert res["beta"] == pytest.approx(res["beta"]) and res["beta"] > 0  # finite
    names = [r["name"] for r in res["runs"]]
    # random is linf noise (EM's budget); OPS (l0) gets its own control, one random pixel
    assert names == ["clean", "ops", "random", "random-l0"]
    assert [r["role"] for r in res["runs"]] == ["clean", "poisoned", "control", "control"]
    assert res["runs"][0]["ud"] is None and res["runs"][0]["lp"] > 0
    assert all(r["ud"] is not None for r in res["runs"][1:])
    for fig in ("sal_heatmaps.png", "learnable_counts.png"):
        assert (out / fig).stat().st_size > 0
    rows = [
        json.loads(x)
        for x in (out / "runs" / "ops" / "metrics.jsonl").read_text().split("\n")
        if x.strip()
    ]
    assert len(rows) == 2 and len(rows[0]["sal"]) == 3  # tiny: conv1, conv2, fc
    # resumable/idempotent: a second call reuses the finished runs
    mtime = (out / "runs" / "clean" / "summary.json").stat().st_mtime_ns
    assert main(args) == 0
    assert (out / "runs" / "clean" / "summary.json").stat().st_mtime_ns == mtime
    # `uebench ud` recomputes the same table from the stored runs
    ud_out = tmp_path / "ud"
    assert (
        main(
            [
                "ud",
                "--clean",
                str(out / "runs" / "clean"),
                "--poisoned",
                str(out / "runs" / "ops"),
                str(out / "runs" / "random"),
                str(out / "runs" / "random-l0"),
                "--out",
                str(ud_out),
            ]
        )
        == 0
    )
    again = json.loads((ud_out / "results.json").read_text())
    assert again["beta"] == pytest.approx(res["beta"])
    assert [r["ud"] for r in again["runs"]] == [r["ud"] for r in res["runs"]]
    # the controls are recognised from the stored runs alone, and every statistic recomputed
    assert [r["control"] for r in again["runs"]] == [None, "random-l0", None, None]
    assert [r["statistics"] for r in again["runs"]] == [r["statistics"] for r in res["runs"]]
