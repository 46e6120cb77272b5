"""``uebench check`` end to end on synthetic data (poisons made with the real generators), the
verdict rule on constructed intervals, the table renderers and the CLI entry points."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from uebench.attacks.generate import generate_poison
from uebench.bench.render import latex, markdown
from uebench.bench.tables import LAYOUTS, build_tables
from uebench.bench.verdict import verdict
from uebench.cli import dispatch, parse
from uebench.errors import UebenchError


def cli(argv):
    """A command through the parser and its registered handler, errors raised (not printed)."""
    return dispatch(parse(argv))


def s(mean, low=None, high=None):
    return {"n": 2, "mean": mean, "std": None, "ci_low": low, "ci_high": high}


def p(mean, low=None, high=None, less="lower"):
    """A paired difference (poison - control) as paired_difference returns it."""
    separated = None if low is None else (high < 0 if less == "lower" else low > 0)
    direction = "less" if (mean < 0) == (less == "lower") else "more"
    return {"n": 3, "mean": mean, "ci_low": low, "ci_high": high, "separated": separated,
            "direction": direction}


@pytest.mark.parametrize("drop, headline, expected", [
    (s(0.4, 0.3, 0.5), p(-0.2, -0.3, -0.1), "protected"),
    (s(0.4, 0.3, 0.5), p(0.2, 0.1, 0.3), "accuracy only"),  # separated, more learnable
    (s(0.02, 0.0, 0.05), p(-0.2, -0.3, -0.1), "not protected"),
    (s(0.12, 0.05, 0.2), p(-0.2, -0.3, -0.1), "inconclusive"),  # the drop straddles 10 points
    (s(0.4, 0.3, 0.5), p(-0.1, -0.3, 0.1), "inconclusive"),  # the difference straddles 0
    (s(0.4), p(-0.2), "inconclusive"),  # one seed: no interval against the control
    (s(0.4, 0.3, 0.5), None, "inconclusive"),  # no control
    (s(0.4, 0.3, 0.5), p(0.2, 0.1, 0.3, less="higher"), "protected"),
])
def test_verdict_rule(drop, headline, expected):
    assert verdict(drop, headline) == expected


def test_table_layouts_pivot_bold_and_change():
    def cell(method, defense, ud, change=None):
        return {"method": method, "labels": {"method": method, "dataset": "d", "model": "m",
                                             "defense": defense},
                "test_acc": s(0.5), "lp": s(1.0), "ud": s(ud), "ud_change": s(change)}
    cells = [cell("vanilla", "none", None), cell("em", "none", 0.4), cell("ops", "none", 0.2),
             cell("vanilla", "jpeg", 0.8), cell("em", "jpeg", 0.6, 0.2),
             cell("ops", "jpeg", 0.7, 0.5)]
    (table,) = build_tables(cells, "table2")
    assert table.groups == ["none", "jpeg"] and [r for r, _ in table.rows] == ["vanilla", "em",
                                                                                "ops"]
    md = markdown(table)
    assert "| ops | 1.00 | **0.200** | 1.00 | 0.700 (+0.500) |" in md
    assert "| em | 1.00 | 0.400 | 1.00 | **0.600 (+0.200)** |" in md
    tex = latex(table)
    assert r"\multicolumn{2}{c}{jpeg}" in tex and r"\textbf{0.200}" in tex
    (t1,) = build_tables(cells[:3], "table1")
    assert t1.metrics == ["test_acc", "lp", "ud"] and t1.title == "model m · defense none"


@pytest.fixture(scope="module")
def poisons(tmp_path_factory):
    root = tmp_path_factory.mktemp("poisons")
    generate_poison("ops", dataset="synthetic", out=root / "ops", train_size=128,
                    progress=False)
    return root


def test_check_writes_a_self_contained_report(poisons, tmp_path, capsys):
    argv = ["check", "--clean", "synthetic", "--protected", str(poisons / "ops"),
            "--models", "tiny:2", "--defenses", "cutout:size=4",
            "--seeds", "2", "--ratios", "1", "--test-size", "64", "--workers", "2", "--quiet",
            "--no-detect",  # detection: test_check_reports_how_detectable_each_set_is
            "--store", str(tmp_path / "store"), "--out", str(tmp_path / "out"),
            "train.epochs=3", "train.batch_size=32", "train.lr=0.05",
            "sal.options.probe_size=32"]
    assert cli(argv) == 0
    view = tmp_path / "out" / "check"
    page = (view / "check.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "data:image/png;base64," in page
    assert "src=\"http" not in page and "<link" not in page  # nothing outside the file
    report = json.loads((view / "check.json").read_text())
    checked = [r for r in report["rows"] if r["role"] == "poisoned"]
    assert {(r["method"], r["defense"]) for r in checked} == {
        ("ops", "none"), ("ops", "cutout:size=4")}
    # the random-noise control at OPS's budget (one random pixel), in every setting, no verdict
    controls = [r for r in report["rows"] if r["role"] == "control"]
    assert {(r["method"], r["defense"]) for r in controls} == {
        ("random-l0", "none"), ("random-l0", "cutout:size=4")}
    assert all("verdict" not in r for r in controls)
    for row in checked:
        assert row["verdict"] in ("protected", "accuracy only", "not protected", "inconclusive")
        assert row["ud"]["n"] == 2 and row["drop"]["n"] == 2
        assert row["control"] == "random-l0"
        control = next(r for r in controls if r["defense"] == row["defense"])
        for name, paired in row["paired"].items():  # poison - control, seed by seed
            expected = [None if a is None or b is None else a - b for a, b in zip(
                row["statistics_per_seed"][name], control["statistics_per_seed"][name])]
            assert paired["per_seed"] == pytest.approx(expected)
        # the drop is paired by seed against the clean, undefended model
        clean = next(r for r in report["rows"] if r["vanilla"] and r["defense"] == "none")
        assert row["drop_per_seed"] == pytest.approx(
            [c - p for c, p in zip(clean["test_acc_per_seed"], row["test_acc_per_seed"])])
    cells = {(c["method"], c["labels"]["defense"]): c
             for c in json.loads((view / "tables.json").read_text())["cells"]}
    defended, plain = cells[("ops", "cutout:size=4")], cells[("ops", "none")]
    assert defended["ud_change_per_seed"] == pytest.approx(  # paper Table 2's subscripts
        [None if d is None or p is None else d - p
         for d, p in zip(defended["ud_per_seed"], plain["ud_per_seed"])])
    md = (view / "check.md").read_text()
    assert "Rule: **protected**" in md and "figures/overview.png" in md
    assert "ops − random-l0" in md and "Statistics: tiny" in md
    from uebench.bench.check_report import verdict_table  # what `check --save` stores for docs

    header, body = verdict_table(report["rows"])
    assert header[-1] == "verdict" and [r[-1] for r in body] == [r["verdict"] for r in checked]
    assert (view / "figures" / "overview.png").is_file()
    assert "detect" not in report and not (view / "detect").exists()  # --no-detect
    assert "Protected vs detectable" not in md
    assert "report:" in capsys.readouterr().out


def test_check_reports_how_detectable_each_set_is(poisons, tmp_path, capsys):
    """Every protected set and control gets each registered detector's score against its
    threshold and a detect verdict beside its protection verdict; a rerun reuses the readings."""
    from uebench.bench.check import run_check
    from uebench.bench.executors import get_executor
    from uebench.detect import DETECTORS

    def check():
        return run_check("synthetic", [poisons / "ops"], store=tmp_path / "store",
                         out=tmp_path / "out", executor=get_executor("local", workers=1),
                         progress=False, models=["tiny:2"], seeds=1, ratios=[1],
                         test_size=64, overrides=["train.epochs=1", "train.batch_size=32",
                                                  "sal.options.probe_size=32"])

    first = check()
    view = tmp_path / "out" / "check"
    report = json.loads((view / "check.json").read_text())
    sets = {s["method"]: s for s in report["detect"]["sets"]}
    assert {m: s["role"] for m, s in sets.items()} == {"ops": "protected",
                                                       "random-l0": "control"}
    for entry in sets.values():
        assert [d["name"] for d in entry["detectors"]] == DETECTORS.names()
        for d in entry["detectors"]:
            assert d["flagged"] == (d["score"] > d["threshold"])
        assert entry["flagged"] == any(d["flagged"] for d in entry["detectors"])
        assert not entry["reused"] and (Path(entry["dir"]) / "detect.json").is_file()
        assert Path(entry["dir"]).parent == view / "detect"
    assert not list((view / "detect").glob(".*"))  # no partial folder left behind
    table = report["protected_vs_detectable"]
    assert table["header"][:3] == ["protected set", "protection", "acc drop (points)"]
    assert table["header"][-1] == "detect verdict"
    assert [h.split(":")[0] for h in table["header"][3:-1]] == DETECTORS.names()
    protected = [r for r in report["rows"] if r["role"] == "poisoned"]
    assert [line[0] for line in table["rows"]] == [
        *(r["label"] for r in protected),
        *(r["label"] for r in report["rows"] if r["role"] == "control")]
    ops = table["rows"][0]
    assert ops[1] == protected[0]["verdict"] and ops[2] != ""
    for cell, d in zip(ops[3:-1], sets["ops"]["detectors"]):
        assert f"{d['score']:+.3f} / {d['threshold']:.3f}" in cell
        assert ("flagged" in cell) == d["flagged"]
    assert ops[-1] == ("not flagged" if not sets["ops"]["flagged"] else
                       "**flagged** by " + ", ".join(sets["ops"]["flagged_by"]))
    assert "Protected vs detectable" in (view / "check.md").read_text()
    assert "Protected vs detectable" in (view / "check.html").read_text()

    # the same check from the command line: the readings are reused, a short table is printed
    stamps = {m: (Path(s["dir"]) / "detect.json").stat().st_mtime_ns for m, s in sets.items()}
    capsys.readouterr()
    assert cli(["check", "--clean", "synthetic", "--protected", str(poisons / "ops"),
                "--models", "tiny:2", "--seeds", "1", "--ratios", "1", "--test-size", "64",
                "--quiet", "--store", str(tmp_path / "store"), "--out", str(tmp_path / "out"),
                "train.epochs=1", "train.batch_size=32", "sal.options.probe_size=32"]) == 0
    again = json.loads((view / "check.json").read_text())["detect"]["sets"]
    assert all(s["reused"] for s in again)
    assert {s["method"]: (Path(s["dir"]) / "detect.json").stat().st_mtime_ns
            for s in again} == stamps
    assert [{k: v for k, v in s.items() if k != "reused"} for s in again] == [
        {k: v for k, v in s.items() if k != "reused"} for s in first["detect"]]
    printed = capsys.readouterr().out
    assert "protected vs detectable" in printed
    verdict = "FLAGGED by " + ", ".join(sets["ops"]["flagged_by"]) if sets["ops"]["flagged"] \
        else "not flagged"
    assert f"{protected[0]['label']}: {protected[0]['verdict']}, drop " in printed
    assert f"detect: {verdict}" in printed


def test_check_refuses_a_poison_of_other_data(poisons, tmp_path):
    with pytest.raises(UebenchError, match="not all for --clean digits"):
        cli(["check", "--clean", "digits", "--protected", str(poisons / "ops"),
             "--store", str(tmp_path / "s"), "--out", str(tmp_path / "o"), "--quiet"])


def test_bench_dry_run_prints_the_plan(tmp_path, capsys):
    grid = Path(__file__).parents[1] / "experiments" / "table1-cpu.yaml"
    assert cli(["bench", str(grid), "--dry-run", "--store", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    # four poisons and the controls of their three budgets (l0, l2, linf)
    assert "poison     7 jobs: 0 in the store, 7 to run" in text and "train em / seed 1" in text
    assert "poison random-l2 (fashion-mnist" in text
    assert not any(tmp_path.iterdir())  # a dry run writes nothing


@pytest.mark.parametrize("name", LAYOUTS.names())
def test_every_layout_builds_its_tables_and_names_registered_companions(name):
    # registry-driven: a new layout (or companion) is covered without a test of its own
    cells = [{"method": mth, "labels": {"method": mth, "dataset": "d", "model": "m",
                                       "defense": dfn},
              "test_acc": s(acc), "lp": s(1.0), "ud": s(None if mth == "vanilla" else 0.5),
              "ud_change": s(None)}
             for mth, dfn, acc in [("vanilla", "none", 0.8), ("em", "none", 0.2),
                                   ("vanilla", "jpeg", 0.7), ("em", "jpeg", 0.6)]]
    layout = LAYOUTS.get(name)
    tables = build_tables(cells, name)
    assert tables and all(t.metrics == list(layout.metrics) for t in tables)
    assert sum(len(t.rows) for t in tables) >= 2
    for companion in LAYOUTS.meta(name).get("companions", ()):
        assert companion in LAYOUTS and LAYOUTS.get(companion).metrics
    if name == "table2-acc":
        (table,) = tables
        assert "| em | 20.00 | 60.00 |" in markdown(table)  # accuracy in %, per defense
