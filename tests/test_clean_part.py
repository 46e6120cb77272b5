"""Partial protection against the clean part alone (uebench.bench.clean_part): the paired
difference of a replace share and its drop twin, by hand, and the script that stores it."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

from uebench.bench.clean_part import clean_part_rows, clean_part_table, reading
from uebench.utils import stored
from uebench.utils.stored import load_result, save_result


def _cell(method: str, share: str | None, accs: list[float], seeds=(0, 1, 2), vanilla=False):
    return {"method": method, "vanilla": vanilla, "role": "poisoned", "seeds": list(seeds),
            "setting": {} if share is None else {"poison_ratio": share},
            "test_acc_per_seed": accs}


REPLACE = [_cell("vanilla", "0.5", [0.40, 0.41, 0.42], vanilla=True),
           _cell("em", "0.5", [0.30, 0.31, 0.35]),
           _cell("em", "1.0", [0.10, 0.11, 0.12]),
           _cell("random", "0.5", [0.40, 0.42, 0.41])]
DROP = [_cell("vanilla", "0.5", [0.40, 0.41, 0.42], vanilla=True),
        _cell("dropped", "0.5", [0.36, 0.35, 0.36])]


def test_paired_difference_by_hand():
    rows = clean_part_rows(REPLACE, DROP)
    # the clean runs and the share without a drop twin (1.0) are skipped
    assert [(r["method"], r["share"]) for r in rows] == [("em", 0.5), ("random", 0.5)]
    em, rnd = rows
    diffs = [30 - 36, 31 - 35, 35 - 36]  # points, seed by seed
    mean = sum(diffs) / 3
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 2)
    half = 4.302652729911275 * sd / math.sqrt(3)  # t(0.975, 2)
    assert em["diff"]["mean"] == pytest.approx(mean)
    assert (em["diff"]["ci_low"], em["diff"]["ci_high"]) == pytest.approx((mean - half,
                                                                           mean + half))
    assert em["reading"] == "no different from dropping them"  # [-9.97, +3.31]
    assert rnd["diff"]["mean"] == pytest.approx(((40 - 36) + (42 - 35) + (41 - 36)) / 3)
    assert rnd["reading"] == "learned from them"
    header, body = clean_part_table(rows)
    assert body[0][:5] == ["em", "50%", "3", "32.00", "35.67"]


def test_seeds_are_matched_by_number_not_position():
    replace = [_cell("em", "0.2", [0.5, 0.6], seeds=(1, 0))]
    drop = [_cell("dropped", "0.2", [0.55, 0.4, 0.7], seeds=(0, 1, 2))]
    (row,) = clean_part_rows(replace, drop)
    assert row["seeds"] == [1, 0] and row["diff"]["per_seed"] == pytest.approx([10.0, 5.0])


def test_readings():
    assert reading({"ci_low": 0.1, "ci_high": 2}) == "learned from them"
    assert reading({"ci_low": -3, "ci_high": -0.5}) == "harmed the clean part"
    assert reading({"ci_low": -1, "ci_high": 1}) == "no different from dropping them"
    assert reading({"ci_low": None, "ci_high": None}) == "n/a (1 seed)"


def test_script_stores_the_table_it_prints(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(stored, "RESULTS_DIR", tmp_path)
    save_result("r/replace", {"cells": REPLACE}, command="x", root=tmp_path)
    save_result("r/drop", {"cells": DROP}, command="y", root=tmp_path)
    path = Path(__file__).resolve().parents[1] / "experiments" / "ratio_clean_part.py"
    spec = importlib.util.spec_from_file_location("ratio_clean_part", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["r/replace", "r/drop", "--save", "r/clean"]) == 0
    result = load_result("r/clean", tmp_path)
    rows = result["tables"]["clean-part"]["rows"]
    assert [r[0] for r in rows] == ["em", "random"]
    assert all("| " + " | ".join(r) + " |" in capsys.readouterr().out for r in rows[:1])
    assert result["command"].endswith("r/replace r/drop --save r/clean")
