"""benchmarks/table1_gpu.py (the prepared GPU Table-1 run) end to end at tiny scale on CPU.

The GPU numbers need a GPU; here the whole pipeline runs on the synthetic dataset: its stages,
the time budget (a spent budget stops before any work and says so), the table with every poison
beside its control, and a rerun that reuses everything and gives the same table.
"""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import load_benchmark


def _module():
    return load_benchmark("table1_gpu")


def _args(out: Path, *extra: str) -> list[str]:
    return ["--tiny", "--device", "cpu", "--dataset", "synthetic", "--out", str(out), *extra]


def test_table1_gpu_tiny_budget_resume_and_table(tmp_path):
    t1 = _module()
    out = tmp_path / "t1"
    spent = t1.main(_args(out, "--budget", "0"))
    assert not spent["complete"] and "table" not in spent
    assert spent["stages"]["data"]["state"].startswith("not started")
    assert "rerun to resume" in spent["stopped"]
    assert not (out / "runs").exists()  # nothing half-done

    result = t1.main(_args(out, "--budget", "100000"))
    assert result["complete"], result["stages"]
    stored = json.loads((out / "table1_gpu.json").read_text())
    assert stored["complete"] and stored["changes"]
    rows = {r["name"]: r for r in stored["table"]["rows"]}
    assert list(rows) == ["clean", "ops", "lsp", "random", "em", "tap", "random-l0",
                          "random-l2"]
    # every poison is read against the random-noise control at its budget
    assert {n: rows[n]["control"] for n in ("ops", "lsp", "em", "tap")} == {
        "ops": "random-l0", "lsp": "random-l2", "em": "random", "tap": "random"}
    assert {rows[n]["role"] for n in ("random", "random-l0", "random-l2")} == {"control"}
    for name, (acc, ud) in t1.PAPER.items():
        assert rows[name]["paper_acc"] == acc and rows[name]["paper_ud"] == ud
    for r in rows.values():
        assert 0.0 <= r["test_acc"] <= 1.0 and r["lp"] >= 0
        assert set(r["statistics"]) >= {"ud", "acc", "peak_acc", "probe_linear", "sal_ratio"}
    # the paper's engine at the measured epochs, for every run, beside the fast engine's
    compat = {r["name"]: r for r in stored["compat"]["rows"]}
    assert set(compat) == set(rows) and stored["compat"]["epochs"] == [1]
    for r in compat.values():
        assert len(r["compat_lp_per_epoch"]) == 1 and len(r["fast_lp_same_epochs"]) == 1
        assert r["fast_lp_same_epochs"][0] == rows[r["name"]]["lp"]  # one epoch: its #LP
    md = (out / "table1_gpu.md").read_text()
    assert "| ops | poisoned | random-l0 |" in md and "(94.11)" in md

    # a rerun reuses every poison and run: no run directory changes, the same table
    before = {p: p.read_bytes() for p in sorted((out / "runs").glob("*/metrics.jsonl"))}
    again = t1.main(_args(out, "--budget", "100000"))
    assert again["complete"]
    assert again["table"]["rows"] == stored["table"]["rows"]
    assert {p: p.read_bytes() for p in before} == before


def test_table1_gpu_estimates_follow_the_settings():
    t1 = _module()
    # EM: rounds x (PGD steps over the set + the surrogate's batches); TAP: surrogate + PGD
    p = {"max_rounds": 10, "steps": 5, "train_steps": 10, "batch_size": 500}
    assert t1.passes_em(p, 50_000) == 10 * (5 + 0.1)
    assert t1.passes_tap({"surrogate_epochs": 10, "steps": 20, "restarts": 2}, 50_000) == 50
