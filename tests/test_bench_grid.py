"""Grid files -> cells -> keyed jobs: expansion, keys that change exactly when settings do, shared
poisons, the undefended β run of a defended cell, and refusals of bad grids (no training here)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from uebench.bench.axes import VANILLA
from uebench.bench.graph import build_plan
from uebench.bench.grid import expand, grid_from_dict, load_grid
from uebench.bench.store import Store, job_key
from uebench.errors import UebenchError

BASE = {"data": {"name": "synthetic", "train_size": 64, "test_size": 32},
        "model.name": "tiny", "train": {"epochs": 2, "batch_size": 32}}


def grid(**extra):
    return grid_from_dict({"name": "g", "base": BASE, "controls": False, **extra})


def test_controls_are_added_at_each_poison_budget_once():
    from uebench.attacks.lsp import lsp_radius

    g = grid_from_dict({"name": "g", "base": BASE, "grid": {"method": [
        "ops", "lsp", "em", "tap", {"name": "random", "attack": "random"}]}})
    added = {m.name: dict(m.params) for m in g.methods[6:]}
    # EM and TAP share the given linf control; OPS gets one random pixel, LSP its l2 radius
    assert added == {"random-l0": {"norm": "l0", "eps": 1},
                     "random-l2": {"norm": "l2", "eps": pytest.approx(lsp_radius((3, 16, 16)))}}
    assert all(m.attack == "random" for m in g.methods[6:])
    plain = grid_from_dict({"name": "g", "base": BASE, "controls": False,
                            "grid": {"method": ["ops"]}})
    assert [m.name for m in plain.methods] == ["vanilla", "ops"]
    with pytest.warns(UserWarning, match="varies the dataset"):
        varied = grid_from_dict({"name": "g", "base": BASE, "grid": {
            "method": ["lsp", "ops"], "dataset": ["synthetic", "digits"]}})
    assert [m.name for m in varied.methods] == ["vanilla", "lsp", "ops", "random-l0"]


def test_expansion_resolves_every_cell_through_the_config_path():
    g = grid(grid={"method": ["ops", "em:classwise"], "defense": ["none", "cutout"],
                   "train.lr": [0.01, 0.02], "seed": [0, 1]})
    cells = expand(g)
    assert [m.name for m in g.methods] == ["vanilla", "ops", "em-classwise"]
    assert g.methods[2].attack == "em" and g.methods[2].preset == "classwise"
    assert len(cells) == 3 * 2 * 2 * 2
    assert {c.cfg.train.lr for c in cells} == {0.01, 0.02}
    assert {c.cfg.defense for c in cells} == {"none", "cutout"}
    for c in cells:  # recipe < base < axes; SAL on; every seed on the poisons' images
        assert c.cfg.train.epochs == 2 and c.cfg.train.optimizer == "adam"  # synthetic recipe
        assert c.cfg.sal.enabled and c.cfg.data.subset_seed == 0 and c.cfg.device == "auto"
    assert {c.seed for c in cells} == {0, 1} == {c.cfg.seed for c in cells}


def test_mapping_axis_values_set_several_keys_with_a_label():
    g = grid(grid={"model": ["tiny", {"label": "wide", "name": "tiny", "width": 2.0}]})
    cells = expand(g)
    assert [dict(c.setting)["model"] for c in cells] == ["tiny", "wide"]
    assert [c.cfg.model.width for c in cells] == [1.0, 2.0]


def test_a_section_axis_sets_only_its_keys():
    """``train: [{label: sgd, optimizer: sgd, lr: 0.05}, ...]`` changes those keys and keeps the
    rest of the base's (and the recipe's) train section."""
    g = grid(grid={"train": [{"label": "sgd", "optimizer": "sgd", "lr": 0.05},
                             {"label": "adam", "optimizer": "adam", "lr": 0.002, "epochs": 3}]})
    sgd, adam = (c.cfg.train for c in expand(g))
    assert [dict(c.setting)["train"] for c in expand(g)] == ["sgd", "adam"]
    assert (sgd.optimizer, sgd.lr, sgd.epochs, sgd.batch_size) == ("sgd", 0.05, 2, 32)
    assert (adam.optimizer, adam.lr, adam.epochs, adam.batch_size) == ("adam", 0.002, 3, 32)


def test_keys_change_exactly_when_a_setting_that_matters_does(tmp_path):
    store = Store(tmp_path)
    plan = build_plan(grid(grid={"method": ["ops"]}), store)
    again = build_plan(grid(grid={"method": ["ops"]}), Store(tmp_path / "elsewhere"))
    assert list(plan.jobs) == list(again.jobs)  # keys do not depend on where the store is
    lr = build_plan(grid(grid={"method": ["ops"], "train.lr": [0.5]}), store)
    poison = [k for k, j in plan.jobs.items() if j.kind == "poison"]
    assert poison == [k for k, j in lr.jobs.items() if j.kind == "poison"]  # lr: runs only
    assert not set(plan.jobs) - set(poison) & set(lr.jobs)
    assert job_key("train", {"a": 1, "b": [1, 2]}) == job_key("train", {"b": [1, 2], "a": 1})
    assert job_key("train", {"a": 1}) != job_key("poison", {"a": 1})


def test_one_poison_serves_every_model_defense_and_seed(tmp_path):
    g = grid(grid={"method": ["ops"], "model": ["tiny", "linear"], "defense": ["none", "cutout"],
                   "seed": [0, 1, 2]})
    plan = build_plan(g, Store(tmp_path))
    kinds = [j.kind for j in plan.jobs.values()]
    assert kinds.count("poison") == 1 and kinds.count("train") == 2 * 2 * 2 * 3
    assert kinds.index("poison") == 0  # poisons first: their work starts first
    runs = [j for j in plan.jobs.values() if j.kind == "train" and j.spec["poison"]]
    assert {j.deps for j in runs} == {(next(iter(plan.jobs)),)}


def test_defended_cells_take_beta_from_the_undefended_clean_run(tmp_path):
    plan = build_plan(grid(grid={"method": ["ops"], "defense": ["cutout"]}), Store(tmp_path))
    # vanilla+cutout, ops+cutout and the added undefended vanilla run
    assert sum(j.kind == "train" for j in plan.jobs.values()) == 3
    beta = {e["beta"] for e in plan.entries}
    assert len(beta) == 1 and plan.jobs[beta.pop()].spec["cfg"]["defense"] == "none"
    defended = build_plan(grid(grid={"method": ["ops"], "defense": ["cutout"]},
                               beta_from="defended"), Store(tmp_path))
    assert sum(j.kind == "train" for j in defended.jobs.values()) == 2


@pytest.mark.parametrize("bad, message", [
    ({"grid": {"device": ["cpu"]}}, "executor assigns devices"),
    ({"base": {"device": "cuda"}}, "executor assigns devices"),
    ({"grid": {"train.lrr": [0.1]}}, "unknown config key"),
    ({"grid": {"method": ["nosuchattack"]}}, "unknown attack"),
    ({"grid": {"method": [{"attack": "ops", "params": {"eps": 1}}]}}, "no parameter"),
    ({"grid": {"seed": []}}, "non-empty list"),
    ({"table": "table9"}, "table must be one of"),
    ({"grids": {}}, "unknown grid key"),
    ({"name": "../x"}, "grid name"),
    ({"resources": {"train": {"gpu": 1}}}, "resources.train"),
    ({"grid": {"method": ["ops", {"attack": "ops"}]}}, "must be unique"),
])
def test_bad_grids_are_refused_before_any_work(tmp_path, bad, message):
    with pytest.raises(UebenchError, match=message):
        build_plan(grid(**bad), Store(tmp_path))


def test_experiment_files_expand(tmp_path):
    root = Path(__file__).parents[1] / "experiments"
    # the study and ratio grids on Fashion-MNIST too (their CIFAR-10 twins size LSP's radius from
    # the archive, which a fresh machine may not have)
    files = sorted(root.glob("*.yaml")) + sorted(root.glob("*/fmnist*.yaml"))
    assert len(files) >= 9  # tables 1-3 at paper scale and CPU scale, the test grid, the studies
    for path in files:
        plan = build_plan(load_grid(path), Store(tmp_path))
        assert plan.entries and plan.grid.methods[0] == VANILLA
        assert path.read_text().startswith("#"), f"{path.name} lacks its header comment"


def test_vanilla_is_first_and_only_once():
    g = grid(grid={"method": ["clean", "ops", "vanilla"]})
    assert [m.name for m in g.methods] == ["vanilla", "ops"]
    assert dataclasses.replace(g.methods[1], attack=None).vanilla


def test_stored_tables_read_each_sections_first_table():
    from uebench.bench.report import stored_tables

    text = ("# g\n\n- note\n\n## all cells\n\n| cell | acc |\n|---|---:|\n| a | 1.5 |\n"
            "| b | 2.5 |\n\n## statistics (all cells; mean over seeds)\n\n| run | UD |\n"
            "|---|---:|\n| a | 0.1 |\n\n## against the control (all cells)\n\nnote\n\n"
            "| run − control | UD |\n|---|---:|\n| a − r | +0.2 |\n")
    assert stored_tables(text) == {
        "all-cells": (["cell", "acc"], [["a", "1.5"], ["b", "2.5"]]),
        "statistics-all-cells": (["run", "UD"], [["a", "0.1"]]),
        "against-the-control-all-cells": (["run − control", "UD"], [["a − r", "+0.2"]]),
    }


def test_stored_tables_keep_every_subsection_pivot():
    from uebench.bench.report import stored_tables

    text = ("## table2: methods x defenses\n\n### dataset c · train sgd\n\n| method | UD |\n"
            "|---|---:|\n| em | 2.0 |\n\n### dataset c · train adam\n\n| method | UD |\n"
            "|---|---:|\n| em | 0.9 |\n\n## all cells\n\n| cell | acc |\n|---|---:|\n| a | 1.5 |\n")
    tables = stored_tables(text)
    assert tables["table2-methods-x-defenses"] == (["method", "UD"], [["em", "2.0"]])
    assert tables["table2-methods-x-defenses.dataset-c-train-sgd"] == (["method", "UD"],
                                                                      [["em", "2.0"]])
    assert tables["table2-methods-x-defenses.dataset-c-train-adam"] == (["method", "UD"],
                                                                       [["em", "0.9"]])
    assert tables["all-cells"] == (["cell", "acc"], [["a", "1.5"]])
