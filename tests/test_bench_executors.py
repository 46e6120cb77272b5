"""The test grid (experiments/smoke.yaml) end to end: local workers and Ray, each with a worker
killed mid-run, give identical tables; a second run reuses everything; tables regenerate from the
run directories; the result matches the stored expected values; one key is built once even when
two workers ask for it at the same time."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from uebench.bench import load_grid, run_grid
from uebench.bench.cost import describe_plan
from uebench.bench.graph import build_plan
from uebench.bench.jobs import FAULT_ENV, run_job
from uebench.bench.regression import compare, expected_values
from uebench.bench.report import write_reports
from uebench.bench.store import Store

ROOT = Path(__file__).parents[1]
GRID = ROOT / "experiments" / "smoke.yaml"
EXPECTED = ROOT / "experiments" / "expected" / "smoke.json"


def run_with_fault(tmp: Path, executor: str, **options):
    """Run the grid; the ops training job of seed 1 kills its own worker after epoch 2, once."""
    os.environ[FAULT_ENV] = f"epoch=2,match=ops / seed 1,dir={tmp / 'faults'}"
    try:
        result = run_grid(load_grid(GRID), store=tmp / "store", out=tmp / "out",
                          executor=executor, progress=False, **options)
    finally:
        del os.environ[FAULT_ENV]
    assert len(list((tmp / "faults").glob("*.exited"))) == 1  # the worker was killed once
    return result


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("local")
    return tmp, run_with_fault(tmp, "local", workers=2)


def test_local_grid_survives_a_killed_worker(local):
    tmp, result = local
    assert result["failures"] == {}
    assert {r["status"] for r in result["results"].values()} == {"built"}
    view = Path(result["view"])
    for name in ("tables.md", "tables.tex", "tables.csv", "tables.json", "index.json"):
        assert (view / name).is_file()
    progress = json.loads((view / "progress.json").read_text())
    assert progress["ended"] is True and progress["eta_seconds"] == 0.0
    assert progress["counts"] == {"built": len(result["results"])}
    tables = result["tables"]
    assert [c["method"] for c in tables["cells"]] == ["vanilla", "ops", "lsp"]
    for cell in tables["cells"]:
        assert cell["seeds"] == [0, 1] and cell["test_acc"]["n"] == 2
        assert cell["ud"]["mean"] is None if cell["vanilla"] else cell["ud"]["n"] == 2
        s = cell["lp"]
        assert s["ci_low"] <= s["mean"] <= s["ci_high"]
    md = (view / "tables.md").read_text()
    assert "| method | synthetic: test acc (%) | synthetic: #LP | synthetic: UD |" in md
    assert "percentile-bootstrap" in md and "\\begin{tabular}" in (view / "tables.tex").read_text()


def test_second_run_reuses_everything_and_tables_come_from_run_dirs(local):
    tmp, first = local
    plan = build_plan(load_grid(GRID), Store(tmp / "store"))
    assert plan.todo() == []  # nothing left to compute
    view = Path(first["view"])
    before = (view / "tables.json").read_text()
    for name in ("tables.md", "tables.json"):
        (view / name).unlink()
    write_reports(view)
    assert (view / "tables.json").read_text() == before
    again = run_grid(load_grid(GRID), store=tmp / "store", out=tmp / "out", progress=False)
    assert again["results"] == {} and again["tables"] == first["tables"]


def test_dry_run_estimates_from_the_stores_measurements(local):
    tmp, _ = local
    grid = dataclasses.replace(load_grid(GRID), seeds=(0, 1, 2))
    plan = build_plan(grid, Store(tmp / "store"))
    text = describe_plan(plan, workers=2)
    assert re.search(r"train\s+9 jobs: 6 in the store, 3 to run", text)
    assert "measured (cpu)" in text and "0 job(s) without a comparable measurement" in text


def test_matches_stored_expected_values(local):
    _, result = local
    expected = json.loads(EXPECTED.read_text())
    assert compare(result["tables"], expected) == []
    # the comparison can fail: a changed number is reported
    bad = json.loads(json.dumps(expected))
    bad["cells"][1]["test_acc"]["mean"] += 0.2
    assert any("test_acc" in p for p in compare(result["tables"], bad))
    assert expected_values(result["tables"])["cells"][0]["labels"]["method"] == "vanilla"


@pytest.mark.ray
def test_ray_grid_with_a_killed_worker_gives_identical_tables(local, tmp_path):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = run_with_fault(tmp_path, "ray")
    finally:
        ray.shutdown()
    assert result["failures"] == {}
    assert result["tables"] == local[1]["tables"]


def test_a_second_worker_waits_for_the_key_lock(tmp_path):
    # flock belongs to an open file, not a process: two threads contend as two workers would
    store, log = Store(tmp_path), []
    inside, trying = threading.Event(), threading.Event()

    def first():
        with store.building("train", "k" * 64):
            log.append("first in")
            inside.set()
            trying.wait(60)
            time.sleep(0.3)  # without the lock, the second worker would get in now
            log.append("first out")

    def second():
        inside.wait(60)
        trying.set()
        with store.building("train", "k" * 64):
            log.append("second in")

    threads = [threading.Thread(target=f) for f in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert log == ["first in", "first out", "second in"]


def test_two_workers_one_key_one_build(tmp_path):
    plan = build_plan(load_grid(GRID), Store(tmp_path / "store"))
    poison = next(j for j in plan.jobs.values() if j.kind == "poison")
    with ThreadPoolExecutor(2) as pool:  # two workers at once (the lock is per open file)
        results = list(pool.map(run_job, [poison, poison]))
    assert sorted(r["status"] for r in results) == ["built", "cached"]
    folder = Store(tmp_path / "store").path("poison", poison.key)
    assert (folder / "manifest.json").is_file()
    assert not [p for p in folder.parent.rglob("*.tmp")]  # atomic writes leave no partial files
    shutil.rmtree(tmp_path / "store")
