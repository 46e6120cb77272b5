"""The main job (`uebench demo`) end to end at tiny size, and its accuracy-cost reading."""

from __future__ import annotations

import json

import pytest

from uebench.cli import main
from uebench.demo import accuracy_costs

from .conftest import has_dataset


def test_accuracy_costs_reads_the_results() -> None:
    result = {"runs": [{"name": "clean", "role": "clean", "test_acc": 0.80},
                       {"name": "ops", "role": "poisoned", "test_acc": 0.30},
                       {"name": "random", "role": "poisoned", "test_acc": 0.81}]}
    first = accuracy_costs(result).splitlines()[0]
    assert first == "test-accuracy cost vs clean (points): ops +50.0, random -1.0"


@pytest.mark.slow
@pytest.mark.skipif(not has_dataset("fashion-mnist"), reason="Fashion-MNIST files not installed")
def test_demo_end_to_end_tiny(tmp_path, capsys) -> None:
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--train-size", "120", "--test-size", "100",
            "--epochs", "2", "--quiet"]
    assert main(args) == 0
    text = capsys.readouterr().out
    results = json.loads((out / "eval" / "results.json").read_text())
    assert [r["name"] for r in results["runs"]] == ["clean", "em", "ops", "lsp", "random"]
    assert all(len(r["learnable_per_epoch"]) == 2 for r in results["runs"])  # SAL every epoch
    assert "test-accuracy cost vs clean (points): em " in text and "figures: " in text
    for attack in ("em", "ops", "lsp", "random"):
        manifest = json.loads((out / "poisons" / attack / "manifest.json").read_text())
        assert manifest["n"] == 120
    assert main(args) == 0  # cached: poisons and runs are reused, the same table again
    assert capsys.readouterr().out.split("total")[0] == text.split("total")[0]
