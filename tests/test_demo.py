"""The main job (`uebench demo`) end to end at tiny size, and its accuracy-cost reading."""

from __future__ import annotations

import inspect
import json

import pytest

from uebench.attacks.base import resolve_params
from uebench.cli import main
from uebench.demo import DEMO_RECIPE, accuracy_costs, demo_poisons, demo_tables, run_demo

from .conftest import has_dataset


def test_accuracy_costs_reads_the_results() -> None:
    result = {"runs": [{"name": "clean", "role": "clean", "test_acc": 0.80},
                       {"name": "ops", "role": "poisoned", "test_acc": 0.30},
                       {"name": "random", "role": "poisoned", "test_acc": 0.81}]}
    first = accuracy_costs(result).splitlines()[0]
    assert first == "test-accuracy cost vs clean (points): ops +50.0, random -1.0"


def test_demo_em_shapes_its_noise_early_in_the_surrogate_training() -> None:
    # measured (docs/findings.md §1): a round that trains the surrogate on more than an epoch of
    # the demo's subset lets it learn the clean features first, and EM's cost becomes a lottery;
    # the original trains 0.1 of an epoch per round (10 x 512 of CIFAR-10's 50,000)
    em = resolve_params("em", "original", demo_poisons((1, 28, 28))["em"])
    train_size = inspect.signature(run_demo).parameters["train_size"].default
    assert em["train_steps"] * em["batch_size"] <= 0.2 * train_size
    assert em["eps"] == pytest.approx(8 / 255)  # the published budget
    assert "train.augment=none" in DEMO_RECIPE


@pytest.mark.slow
@pytest.mark.skipif(not has_dataset("fashion-mnist"), reason="Fashion-MNIST files not installed")
def test_demo_end_to_end_tiny(tmp_path, capsys) -> None:
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--train-size", "120", "--test-size", "100",
            "--epochs", "2", "--quiet"]
    assert main(args) == 0
    text = capsys.readouterr().out
    results = json.loads((out / "eval" / "results.json").read_text())
    # the controls of OPS's and LSP's budgets are added (EM's is the demo's own random noise)
    assert [r["name"] for r in results["runs"]] == ["clean", "em", "ops", "lsp", "random",
                                                    "random-l0", "random-l2"]
    assert {r["name"]: r["control"] for r in results["runs"]} == {
        "clean": None, "em": "random", "ops": "random-l0", "lsp": "random-l2", "random": None,
        "random-l0": None, "random-l2": None}
    assert "Against the control" in text
    tables = demo_tables(results)  # what README includes from the stored result
    assert [r[0] for r in tables["runs"][1]][-3:] == ["random (control)", "random-l0 (control)",
                                                       "random-l2 (control)"]
    assert [r[0] for r in tables["paired"][1]] == ["em − random", "ops − random-l0",
                                                   "lsp − random-l2"]
    assert all(len(r["learnable_per_epoch"]) == 2 for r in results["runs"])  # SAL every epoch
    assert "test-accuracy cost vs clean (points): em " in text and "figures: " in text
    for attack in ("em", "ops", "lsp", "random"):
        manifest = json.loads((out / "poisons" / attack / "manifest.json").read_text())
        assert manifest["n"] == 120
    assert main(args) == 0  # cached: poisons and runs are reused, the same table again
    assert capsys.readouterr().out.split("total")[0] == text.split("total")[0]
