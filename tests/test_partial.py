"""Partial and mixed poisoning (``poison_ratio``, ``poison_mix``; docs/bench.md, "Partial and mixed
poisoning"): the training set against a tensor oracle, the stored indices, the run identity, the
grid axis, evaluate's controls and the check's shares."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from uebench.attacks.generate import generate_poison
from uebench.bench.check_grid import check_grid, check_spec, clean_part_grid
from uebench.bench.check_rows import check_rows
from uebench.bench.graph import build_plan, train_spec
from uebench.bench.grid import expand, grid_from_dict
from uebench.bench.store import Store, job_key
from uebench.cli import main
from uebench.config import RunCfg, config_hash, resolve_run_cfg, to_dict
from uebench.errors import ConfigError, UebenchError
from uebench.evaluation import evaluate
from uebench.poisons.store import load_poisoned
from uebench.train import rundir
from uebench.train.partial import poisoned_indices
from uebench.train.run import identity, load_splits, train_run, training_set

N = 100  # synthetic: 10 classes of 10 images at this size, so "half of each class" is exact
DATA = {"dataset": "synthetic", "train_size": N, "test_size": 32}
RUN = ["train.batch_size=50", "data.subset_seed=0", "sal.options.probe_size=32"]


def cfg_of(poison=None, **flags):
    return resolve_run_cfg(model="tiny", epochs=1, poison=None if poison is None else str(poison),
                           overrides=RUN, **DATA, **flags)


@pytest.fixture(scope="module")
def poison(tmp_path_factory):
    out = tmp_path_factory.mktemp("poison") / "random"
    generate_poison("random", dataset="synthetic", out=out, train_size=N, progress=False)
    return out


@pytest.fixture(scope="module")
def sets(poison):
    """The clean training set and its fully poisoned version."""
    splits = load_splits(cfg_of())
    return splits, load_poisoned(poison, splits.train)


def test_ratio_one_replace_is_todays_training_set(poison, sets):
    splits, full = sets
    for cfg in (cfg_of(poison), cfg_of(poison, poison_ratio=1.0, poison_mix="replace")):
        data = training_set(cfg, splits)
        assert torch.equal(data.x, full.x) and torch.equal(data.y, full.y)
    # the defaults are left out of the stored config, so run ids and store keys are unchanged
    cfg = cfg_of(poison, poison_ratio=1.0)
    assert "poison_ratio" not in to_dict(cfg) and "poison_mix" not in to_dict(cfg)
    assert config_hash(cfg) == config_hash(dataclasses.replace(cfg, poison_ratio=1))
    assert to_dict(RunCfg()) == to_dict(RunCfg(poison_ratio=1.0, poison_mix="replace"))
    # the run id and store key of this clean run as computed before the settings existed
    assert config_hash(cfg_of()) == "60be3b02a3"
    assert job_key("train", train_spec(cfg_of(), None)).startswith("bf7dc2b071c2bd1d")


def test_half_replace_poisons_half_of_every_class(poison, sets):
    splits, full = sets
    clean = splits.train
    data = training_set(cfg_of(poison, poison_ratio=0.5), splits)
    assert len(data) == N and torch.equal(data.y, clean.y)
    poisoned = torch.tensor([not torch.equal(data.x[i], clean.x[i]) for i in range(N)])
    assert all(torch.equal(data.x[i], full.x[i] if poisoned[i] else clean.x[i]) for i in range(N))
    assert torch.bincount(clean.y[poisoned], minlength=10).tolist() == [5] * 10
    idx = poisoned_indices(cfg_of(poison, poison_ratio=0.5), clean)
    assert torch.equal(torch.nonzero(poisoned).flatten(), idx)


def test_add_keeps_every_clean_image_and_appends_the_protected_copies(poison, sets):
    splits, full = sets
    clean = splits.train
    cfg = cfg_of(poison, poison_ratio=0.2, poison_mix="add")
    idx = poisoned_indices(cfg, clean)
    data = training_set(cfg, splits)
    assert len(idx) == 20 and len(data) == N + 20
    assert torch.equal(data.x[:N], clean.x) and torch.equal(data.y[:N], clean.y)
    assert torch.equal(data.x[N:], full.x[idx]) and torch.equal(data.y[N:], clean.y[idx])
    assert torch.bincount(clean.y[idx], minlength=10).tolist() == [2] * 10
    assert len(training_set(dataclasses.replace(cfg, poison_ratio=0.0), splits)) == N


def test_drop_trains_on_the_clean_part_alone(poison, sets, tmp_path):
    # drop: the protected subset is left out with its clean originals; what is left are exactly
    # the clean images outside poisoned_indices, in index order (a plain loop as the oracle)
    splits, _ = sets
    clean = splits.train
    cfg = cfg_of(poison, poison_ratio=0.3, poison_mix="drop")
    idx = set(poisoned_indices(cfg, clean).tolist())
    data = training_set(cfg, splits)
    kept = [i for i in range(N) if i not in idx]
    assert len(idx) == 30 and len(data) == N - 30
    assert torch.equal(data.x, torch.stack([clean.x[i] for i in kept]))
    assert data.y.tolist() == [int(clean.y[i]) for i in kept]
    assert data.indices.tolist() == [int(clean.indices[i]) for i in kept]
    # the same images as replace poisons at that share: the clean part of the replace run
    assert idx == set(poisoned_indices(dataclasses.replace(cfg, poison_mix="replace"),
                                       clean).tolist())
    summary = train_run(cfg, tmp_path / "r", progress=False)
    assert summary["n_train"] == N - 30 and summary["poison_mix"] == "drop"
    assert rundir.read_poisoned_indices(tmp_path / "r")["indices"] == sorted(idx)
    with pytest.raises(ConfigError, match="nothing is left to train on"):
        dataclasses.replace(cfg, poison_ratio=1.0)


def test_indices_are_stored_the_same_for_every_seed_and_enter_the_identity(poison, tmp_path):
    runs = []
    for seed in (0, 1):
        cfg = cfg_of(poison, poison_ratio=0.5, seed=seed)
        summary = train_run(cfg, tmp_path / f"s{seed}", progress=False)
        assert summary["n_poisoned"] == 50 and summary["poison_ratio"] == 0.5
        runs.append(rundir.read_poisoned_indices(tmp_path / f"s{seed}"))
    assert runs[0] == runs[1] and len(runs[0]["indices"]) == 50
    assert runs[0]["indices"] == poisoned_indices(cfg, load_splits(cfg).train).tolist()
    # a run of another share or mix is another run, never reused for this one
    ids = {identity(cfg_of(poison, poison_ratio=r, poison_mix=m))["run_id"]
           for r in (1.0, 0.5) for m in ("replace", "add")}
    ids.add(identity(cfg_of(poison, poison_ratio=0.5, poison_mix="drop"))["run_id"])
    assert len(ids) == 5
    with pytest.raises(ConfigError, match="differs in: poison_ratio"):
        train_run(cfg_of(poison, poison_ratio=0.2, seed=1), tmp_path / "s1", progress=False)
    # an unpoisoned full run writes no indices file (runs look as they did)
    train_run(cfg_of(poison), tmp_path / "full", progress=False)
    assert rundir.read_poisoned_indices(tmp_path / "full") is None


def test_tampered_or_foreign_indices_are_refused(poison, tmp_path):
    cfg = cfg_of(poison, poison_ratio=0.5)
    run = tmp_path / "run"
    train_run(cfg, run, progress=False)
    path = run / rundir.POISONED
    good = json.loads(path.read_text())
    swapped = sorted({*good["indices"][1:], next(i for i in range(N)
                                                 if i not in good["indices"])})
    for bad, message in (
        ({**good, "indices": swapped}, "does not list the images this config poisons"),
        ({**good, "indices": [*good["indices"][:-1], N + 3]}, "lie outside the 100 training"),
        ({**good, "n_clean": 200}, "was written for 200 training images"),
        ({**good, "indices": "all"}, "expected n_clean and a list of integer indices"),
    ):
        path.write_text(json.dumps(bad))
        with pytest.raises(rundir.RunError, match=message):
            train_run(cfg, run, progress=False)
    path.unlink()  # a finished partial run that lost its file
    with pytest.raises(rundir.RunError, match="without poisoned_indices.json"):
        train_run(cfg, run, progress=False)


def test_ratio_outside_the_unit_interval_is_refused():
    for bad in (1.5, -0.1, float("nan")):
        with pytest.raises(ConfigError, match=r"poison_ratio must be a number in \[0, 1\]"):
            resolve_run_cfg(poison_ratio=bad)
    with pytest.raises(ConfigError, match="poison_mix must be one of replace, add, drop"):
        resolve_run_cfg(poison_mix="blend")


def test_cli_flags_of_train_and_evaluate(poison, tmp_path, capsys):
    data = ["--dataset", "synthetic", "--train-size", str(N), "--test-size", "32", "--quiet"]
    assert main(["train", *data, "--model", "tiny", "--epochs", "1", "--poison", str(poison),
                 "--poison-ratio", "0.3", "--poison-mix", "add", "--out", str(tmp_path / "r"),
                 *RUN]) == 0
    summary = rundir.read_summary(tmp_path / "r")
    assert summary["n_train"] == 130 and summary["poison_mix"] == "add"
    assert main(["train", *data, "--poison-ratio", "2", "--out", str(tmp_path / "x")]) == 2
    assert "poison_ratio must be a number in [0, 1]" in capsys.readouterr().err


def grid(**axes):
    return grid_from_dict({
        "name": "g", "base": {"data": {"name": "synthetic", "train_size": N, "test_size": 32},
                              "model.name": "tiny", "train.epochs": 1},
        "grid": {"method": ["ops"], **axes}})


def test_grid_axis_expands_labels_and_shares_the_clean_run(tmp_path):
    g = grid(poison_ratio=[1.0, 0.5])
    cells = expand(g)
    assert {(c.method.name, dict(c.setting)["poison_ratio"], c.cfg.poison_ratio)
            for c in cells} == {(m, label, r) for m in ("vanilla", "ops", "random-l0")
                                for label, r in (("1.0", 1.0), ("0.5", 0.5))}
    plan = build_plan(g, Store(tmp_path))
    runs = {(e["method"], e["labels"]["poison_ratio"]): e["run"] for e in plan.entries}
    assert runs[("vanilla", "1.0")] == runs[("vanilla", "0.5")]  # one clean run for all shares
    assert runs[("ops", "1.0")] != runs[("ops", "0.5")]
    assert runs[("random-l0", "1.0")] != runs[("random-l0", "0.5")]
    # ratio 1 keeps the key it had before the axis existed
    plain = build_plan(grid(), Store(tmp_path))
    assert {e["run"] for e in plain.entries} == {runs[(m, "1.0")] for m in
                                                 ("vanilla", "ops", "random-l0")}


def test_evaluate_trains_the_control_at_the_same_ratio(tmp_path):
    poison = tmp_path / "ops"
    generate_poison("ops", dataset="synthetic", out=poison, train_size=N, progress=False)
    cfg = cfg_of(poison_ratio=0.5)
    result = evaluate(cfg, [poison], out=tmp_path / "e", progress=False)
    runs = tmp_path / "e" / "runs"
    assert sorted(p.name for p in runs.iterdir()) == ["clean", "ops", "random-l0"]
    ops, control = (rundir.read_config(runs / n) for n in ("ops", "random-l0"))
    assert ops.poison_ratio == control.poison_ratio == 0.5
    assert rundir.read_poisoned_indices(runs / "ops")["indices"] == \
        rundir.read_poisoned_indices(runs / "random-l0")["indices"]
    assert rundir.read_config(runs / "clean").poison_ratio == 1.0  # the clean run is shared
    assert any("poison_ratio 0.5" in n for n in result["notes"])


def test_check_grid_has_one_share_per_ratio_with_its_control(tmp_path):
    poison = tmp_path / "ops"
    generate_poison("ops", dataset="synthetic", out=poison, train_size=N, progress=False)
    g = check_grid("synthetic", [poison], models=["tiny"], seeds=1, test_size=32)
    assert [v.label for v in dict(g.axes)["poison_ratio"]] == ["1.0", "0.8", "0.5", "0.2"]
    one = check_grid("synthetic", [poison], models=["tiny"], seeds=1, test_size=32, ratios=[1])

    def trained(grid):
        return sum(j.kind == "train" for j in build_plan(grid, Store(tmp_path)).jobs.values())

    # the clean run once, ops and its control (random-l0) at each share: 1 + 4 x 2 against 1 + 2
    assert (trained(g), trained(one)) == (9, 3)
    # the drop twin: the clean part alone at each share below 1 (its clean run is the check's)
    spec = check_spec("synthetic", [poison], models=["tiny"], seeds=1, test_size=32)
    twin = clean_part_grid(spec)
    assert [v.label for v in dict(twin.axes)["poison_ratio"]] == ["0.8", "0.5", "0.2"]
    assert dict(twin.base)["poison_mix"] == "drop" and not twin.controls
    assert trained(twin) == 1 + 3
    assert {j.key for j in build_plan(twin, Store(tmp_path)).jobs.values()
            if j.label.startswith("train vanilla")} <= set(build_plan(g, Store(tmp_path)).jobs)
    assert clean_part_grid(check_spec("synthetic", [poison], models=["tiny"], ratios=[1])) is None
    added = check_spec("synthetic", [poison], models=["tiny"], overrides=["poison_mix=add"])
    assert clean_part_grid(added) is None  # add keeps the whole clean set: no twin
    for bad in ([1.2], []):
        with pytest.raises(UebenchError, match="--ratios must be shares"):
            check_grid("synthetic", [poison], models=["tiny"], ratios=bad)


def _record(method, share, seed, acc, stat, control=None):
    return {"method": method, "vanilla": method == "vanilla", "seed": seed,
            "labels": {"model": "tiny", "defense": "none", "poison_ratio": share},
            "role": "clean" if method == "vanilla" else ("control" if control is None
                                                         else "poisoned"),
            "control_method": control, "test_acc": acc, "ud": 0.5, "lp": 1.0,
            "statistics": {"ud": stat}}


def test_check_rows_pair_each_share_with_its_own_control():
    records = []
    for share, drop in (("1.0", 0.5), ("0.5", 0.2)):
        for seed in (0, 1, 2):
            records += [_record("vanilla", share, seed, 0.9, 1.0),
                        _record("ops", share, seed, 0.9 - drop, 0.1 * seed + drop,
                                control="random-l0"),
                        _record("random-l0", share, seed, 0.9, 0.1 * seed)]
    rows = check_rows(records, ci="t", min_drop=0.1)
    clean = [r for r in rows if r["vanilla"]]
    assert len(clean) == 1 and clean[0]["seeds"] == [0, 1, 2]  # counted once, not per share
    ops = {r["ratio"]: r for r in rows if r["method"] == "ops"}
    assert ops[1.0]["label"] == "ops · tiny · none · ratio 1"
    assert ops[0.5]["drop"]["mean"] == pytest.approx(0.2)
    # paired against the control of its own share: the difference is exactly the share's drop
    assert ops[0.5]["paired"]["ud"]["per_seed"] == pytest.approx([0.2] * 3)
    assert ops[1.0]["paired"]["ud"]["per_seed"] == pytest.approx([0.5] * 3)


def test_check_reports_protection_at_each_ratio(tmp_path):
    ops = tmp_path / "ops"
    generate_poison("ops", dataset="synthetic", out=ops, train_size=N, progress=False)
    assert main(["check", "--clean", "synthetic", "--protected", str(ops), "--models", "tiny:2",
                 "--seeds", "2", "--ratios", "1,0.5", "--test-size", "32", "--quiet",
                 "--no-detect",
                 "--store", str(tmp_path / "store"), "--out", str(tmp_path / "out"),
                 "train.epochs=2", "train.batch_size=50", "sal.options.probe_size=32"]) == 0
    view = tmp_path / "out" / "check"
    rows = json.loads((view / "check.json").read_text())["rows"]
    assert sorted((r["method"], r["ratio"]) for r in rows) == [
        ("ops", 0.5), ("ops", 1.0), ("random-l0", 0.5), ("random-l0", 1.0), ("vanilla", None)]
    assert {r["control"] for r in rows if r["role"] == "poisoned"} == {"random-l0"}
    md = (view / "check.md").read_text()
    assert "Protection by protected share" in md and "| ratio 1 | ratio 0.5 |" in md
    assert "ops · tinyx2 · none · ratio 0.5" in md and "Statistics: tinyx2, defense none, " \
        "ratio 0.5" in md
    # the 0.5 runs trained on half-poisoned data: their stored indices are the same
    runs = {e["method"]: e["run"] for e in json.loads((view / "index.json").read_text())[
        "entries"] if e["labels"]["poison_ratio"] == "0.5"}
    store = Store(tmp_path / "store")
    indices = [rundir.read_poisoned_indices(store.path("train", runs[m]))["indices"]
               for m in ("ops", "random-l0")]
    assert indices[0] == indices[1] and len(indices[0]) == N // 2

    # against the clean part alone: the twin left the same images out, and each share's
    # reading is its accuracy minus the twin's, seed by seed, in points
    twin = {(e["seed"]): e["run"] for e in json.loads(
        (tmp_path / "out" / "check-clean-part" / "index.json").read_text())["entries"]
        if e["method"] == "clean-part"}
    assert sorted(twin) == [0, 1]
    for run in twin.values():
        left_out = rundir.read_poisoned_indices(store.path("train", run))
        assert left_out["poison_mix"] == "drop" and left_out["indices"] == indices[0]
        assert rundir.read_summary(store.path("train", run))["n_train"] == N - N // 2
    accs = {}
    for e in json.loads((view / "index.json").read_text())["entries"]:
        if e["labels"]["poison_ratio"] == "0.5" and not e["method"] == "vanilla":
            accs[e["method"], e["seed"]] = rundir.read_summary(
                store.path("train", e["run"]))["test_acc"]
    alone = {s: rundir.read_summary(store.path("train", r))["test_acc"] for s, r in twin.items()}
    part = json.loads((view / "check.json").read_text())["clean_part"]
    assert [(r["method"], r["share"]) for r in part["rows"]] == [("ops", 0.5), ("random-l0", 0.5)]
    for r in part["rows"]:
        assert r["diff"]["per_seed"] == pytest.approx(
            [100 * (accs[r["method"], s] - alone[s]) for s in (0, 1)])
    assert "Against the clean part alone" in md
    # --no-clean-part: the same check (every run reused) without the twin's section
    assert main(["check", "--clean", "synthetic", "--protected", str(ops), "--models", "tiny:2",
                 "--seeds", "2", "--ratios", "1,0.5", "--test-size", "32", "--quiet",
                 "--no-detect", "--no-clean-part", "--store", str(tmp_path / "store"),
                 "--out", str(tmp_path / "again"), "train.epochs=2", "train.batch_size=50",
                 "sal.options.probe_size=32"]) == 0
    assert "clean_part" not in json.loads((tmp_path / "again" / "check" / "check.json")
                                          .read_text())
    assert not (tmp_path / "again" / "check-clean-part").exists()
