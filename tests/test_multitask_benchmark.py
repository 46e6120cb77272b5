"""benchmarks/multitask_ue.py --save: the tables it prints are stored as printed (findings §9
includes them), read back from the reports the multi-task code writes."""

from __future__ import annotations

from uebench.multitask import cross, report
from uebench.utils.stored import load_result

from .conftest import load_benchmark


def _cell(diff: float, std: float, clean: float) -> dict:
    return {"diff": diff, "diff_summary": {"std": std}, "clean": clean}


def test_save_tables_stores_the_printed_tables(tmp_path):
    cols = [{"task": "scene", "metric": "accuracy", "key": "scene/accuracy",
             "higher_is_better": True},
            {"task": "depth", "metric": "abs_rel", "key": "depth/abs_rel",
             "higher_is_better": False}]
    table = {"columns": cols, "seeds": [0, 1],
             "rows": [{"poison": "em-scene", "cells": {"scene/accuracy": _cell(-0.15, 0.03, 0.65),
                                                       "depth/abs_rel": _cell(0.001, 0.002, 0.14)}},
                      {"poison": "random", "cells": {"scene/accuracy": _cell(-0.02, 0.01, 0.65),
                                                     "depth/abs_rel": _cell(0.0, 0.003, 0.14)}}]}
    sim = {"tasks": ["scene", "depth"], "mean": [[1.0, 0.65], [0.65, 1.0]]}
    run = {"per_task": {"scene": {"lp": 2.0, "ud": None}, "depth": {"lp": 1.0, "ud": None}},
           "metrics": {"test/scene/accuracy": 0.65}, "similarity": sim}
    result = {"tasks": ["scene", "depth"], "ud_label": "fast", "beta": {"scene": 0.1, "depth": 0.2},
              "runs": [{"name": "clean", "role": "clean", **run},
                       {"name": "em-scene", "role": "poisoned", **run,
                        "per_task": {"scene": {"lp": 1.0, "ud": 0.5},
                                     "depth": {"lp": 1.0, "ud": 1.0}}}],
              "notes": ["seed 0"]}
    (tmp_path / "cross").mkdir()
    (tmp_path / "eval").mkdir()
    (tmp_path / "cross" / "results.md").write_text(cross.markdown(table))
    (tmp_path / "eval" / "results.md").write_text(report.markdown(result))
    load_benchmark("multitask_ue").save_tables("mt/x", tmp_path, [0, 1], root=tmp_path / "results")
    stored = load_result("mt/x", tmp_path / "results")
    t = stored["tables"]
    assert t["cross"]["header"][0] == "poison" and len(t["cross"]["rows"]) == 3  # + clean values
    assert t["cross"]["rows"][0][:2] == ["em-scene", "-0.1500 ± 0.0300"]
    assert t["ud"]["rows"][1][0] == "em-scene (poisoned)" and "0.500" in t["ud"]["rows"][1]
    assert t["metrics"]["header"] == ["run", "scene/accuracy"]
    assert t["similarity"] == {"header": ["run", "scene~depth"],
                               "rows": [["clean", "0.65"], ["em-scene", "0.65"]]}
    assert stored["values"] == {"seeds": [0, 1]} and stored["command"].startswith("python ")


def test_multitask_scenes_stores_its_epoch_table(tmp_path, monkeypatch, capsys):
    # benchmarks/multitask_scenes.py --save: the printed per-epoch table, stored as printed, with
    # the best constant predictor's row (docs/multitask.md §5 includes it)
    from uebench.utils import stored

    monkeypatch.setattr(stored, "RESULTS_DIR", tmp_path)
    bench = load_benchmark("multitask_scenes")
    bench.main(["--backbone", "lenet", "--width", "1", "--image-size", "32", "--n-train", "64",
                "--n-test", "32", "--epochs", "2", "--save", "mt/scenes"])
    printed = capsys.readouterr().out
    table = load_result("mt/scenes", tmp_path)["tables"]["epochs"]
    assert [r[0] for r in table["rows"]] == ["1", "2", "best constant"]
    assert table["header"][:2] == ["epoch", "s"] and "scene/accuracy" in table["header"]
    assert all("| " + " | ".join(r) + " |" in printed for r in table["rows"])
    result = load_result("mt/scenes", tmp_path)
    assert result["command"].endswith("--save mt/scenes") and result["values"]["epochs"] == 2
