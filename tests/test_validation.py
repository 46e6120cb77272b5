"""The validation study end to end on tiny data: a grid with a poison, its control and a second
control draw (``uebench bench``), then ``uebench validate``: paired effects, AUROC, power and
false positives, checked against plain computations over the stored per-seed values."""

from __future__ import annotations

import itertools
import json

import numpy as np
from scipy import stats as scipy_stats

from uebench.bench.grid import grid_from_dict
from uebench.bench.run import run_grid
from uebench.cli import main

GRID = {
    "name": "tiny-study", "table": "long", "ci": "t",
    "base": {"data": {"name": "synthetic", "train_size": 64, "test_size": 32},
             "model.name": "tiny", "train": {"epochs": 2, "batch_size": 32},
             "sal": {"options": {"probe_size": 32, "eval_size": 32}}},
    "grid": {"method": ["ops", {"name": "random-l0", "attack": "random",
                                "params": {"norm": "l0", "eps": 1}},
                        {"name": "random-l0-b", "attack": "random",
                         "params": {"norm": "l0", "eps": 1, "draw": 1}}],
             "seed": [0, 1, 2, 3]},
}


def _separated(d, less="lower"):
    d = np.asarray(d, dtype=float)
    half = scipy_stats.t.ppf(0.975, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size)
    return (d.mean() + half < 0) if less == "lower" else (d.mean() - half > 0)


def test_validate_reads_every_statistic_against_the_control(tmp_path, capsys):
    run_grid(grid_from_dict(GRID), store=tmp_path / "store", out=tmp_path / "out",
             progress=False)
    view = tmp_path / "out" / "tiny-study"
    tables = json.loads((view / "tables.json").read_text())
    cells = {c["method"]: c for c in tables["cells"]}
    assert cells["ops"]["control"] == "random-l0" and cells["random-l0"]["role"] == "control"
    assert cells["random-l0-b"]["role"] == "control-b"
    assert "## against the control" in (view / "tables.md").read_text()

    assert main(["validate", str(view), "--k", "3", "--save", "study/tiny",
                 "--results", str(tmp_path / "results")]) == 0
    printed = capsys.readouterr().out
    assert "ops − random-l0" in printed and "random-l0-b − random-l0" in printed
    stored = json.loads((tmp_path / "results" / "study" / "tiny.json").read_text())
    assert stored["command"].startswith("uebench validate") and stored["machine"]["cpus"]
    summary = {s["statistic"]: s for s in stored["values"]["summary"]}
    for name, s in summary.items():
        run = cells["ops"]["statistics_per_seed"][name]
        ref = cells["random-l0"]["statistics_per_seed"][name]
        b = cells["random-l0-b"]["statistics_per_seed"][name]
        d = [x - y for x, y in zip(run, ref)]
        # AUROC (paired): the fraction of seeds in which the poison reads less learnable
        expected = np.mean([1.0 if x < 0 else 0.5 if x == 0 else 0.0 for x in d])
        assert s["auroc"] == expected
        # false positives over every 3-seed subset of the second draw against the first
        fb = [x - y for x, y in zip(b, ref)]
        subsets = list(itertools.combinations(range(4), 3))
        hits = sum(bool(_separated([fb[i] for i in c]))
                   for c in subsets)
        assert s["fp_subset_count"] == 4 and s["fp_subsets"] == hits / 4, name
        assert s["fp_cells"] == 1
        # either side of 0: one-sided hits in both directions
        either = sum(bool(_separated([fb[i] for i in c])) or
                     bool(_separated([fb[i] for i in c], less="higher")) for c in subsets)
        assert s["fp_subsets_two_sided"] == either / 4, name
        assert s["fp_two_sided"] == int(_separated(fb) or _separated(fb, less="higher")), name


def test_validate_splits_a_grid_with_axes_into_settings(tmp_path):
    """A grid with a further axis (here the epochs): each of its settings pairs its poison with
    its own control, as if it were a grid of its own."""
    from uebench.bench.validation import validate

    grid = {**GRID, "name": "tiny-axes",
            "grid": {"method": GRID["grid"]["method"][:2], "train.epochs": [1, 2],
                     "seed": [0, 1]}}
    run_grid(grid_from_dict(grid), store=tmp_path / "store", out=tmp_path / "out",
             progress=False)
    view = tmp_path / "out" / "tiny-axes"
    result = validate([view], k=2)
    assert result["settings"] == ["tiny-axes-epochs-1", "tiny-axes-epochs-2"]
    cells = {(c["method"], c["setting"]["epochs"]): c
             for c in json.loads((view / "tables.json").read_text())["cells"]}
    for e in result["effects"]:
        epochs = e["setting"].rsplit("-", 1)[1]
        run = cells[e["method"], epochs]["statistics_per_seed"]["acc"]
        ref = cells[e["control"], epochs]["statistics_per_seed"]["acc"]
        assert e["paired"]["acc"]["per_seed"] == [x - y for x, y in zip(run, ref)]
    assert sorted((e["setting"], e["method"]) for e in result["effects"]) == [
        (s, "ops") for s in result["settings"]]
    assert sorted(e["axes"]["epochs"] for e in result["effects"]) == ["1", "2"]

    # the figure: the swept axis is the x axis, each point is the effect's mean in points with
    # its t-interval, and the CLI draws the same file
    from uebench.bench.validation_figure import effects_figure, sweep_axis

    assert sweep_axis(result["effects"]) == "epochs"
    fig = effects_figure(result, ["acc"])
    (series,) = fig.axes[0].containers
    xs, ys = series.lines[0].get_data()
    by_epochs = {int(e["axes"]["epochs"]): e["paired"]["acc"] for e in result["effects"]}
    assert list(ys) == [100 * by_epochs[1]["mean"], 100 * by_epochs[2]["mean"]]
    assert abs(xs[0] - 1) < 0.1 and abs(xs[1] - 2) < 0.1
    (bars,) = series.lines[2]
    lows = [seg[0][1] for seg in bars.get_segments()]
    assert np.allclose(lows, [100 * by_epochs[1]["ci_low"], 100 * by_epochs[2]["ci_low"]])
    # hollow points: the effects not separated from their control
    hollow = sum(len(c.get_offsets()) for c in fig.axes[0].collections
                 if type(c).__name__ == "PathCollection")
    assert hollow == sum(not p["separated"] for p in by_epochs.values())
    png = tmp_path / "effects.png"
    assert main(["validate", str(view), "--k", "2", "--figure", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sweep_axis_is_the_one_numeric_axis_that_varies():
    from uebench.bench.validation_figure import sweep_axis

    def effects(*axes):
        return [{"axes": a} for a in axes]

    assert sweep_axis(effects({"n": "2000", "d": "c"}, {"n": "10000", "d": "c"})) == "n"
    assert sweep_axis(effects({"n": "2000", "d": "c"}, {"n": "2000", "d": "f"})) is None  # text
    assert sweep_axis(effects({"n": "1", "r": "0.5"}, {"n": "2", "r": "1"})) is None  # two axes
    assert sweep_axis(effects({}, {})) is None
