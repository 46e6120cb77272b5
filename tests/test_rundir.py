"""The run-directory readers (uebench.train.rundir, .sal_tags, .run_record): one reader per file,
one error style."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from uebench.config import RunCfg, to_dict
from uebench.errors import UebenchError
from uebench.train import run_record, rundir, sal_tags
from uebench.train.rundir import IncompleteRunError, RunError


def _run(tmp_path: Path, *, complete: bool = True) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / rundir.CONFIG).write_text(yaml.safe_dump(to_dict(RunCfg())))
    rows = [{"epoch": e, "test_acc": 0.5, "sal": {"fc": 0.1 * e}} for e in (1, 2)]
    (run / rundir.METRICS).write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / rundir.IDENTITY).write_text(json.dumps({"run_id": "abc", "poison_sha256": None}))
    (run / rundir.ENV).write_text(json.dumps({"device": "cpu"}))
    if complete:
        (run / rundir.SUMMARY).write_text(json.dumps({"test_acc": 0.5, "name": "x"}))
    return run


def test_readers(tmp_path):
    run = _run(tmp_path)
    assert rundir.is_run_dir(run) and rundir.is_complete(run)
    assert rundir.read_config(run) == RunCfg()
    assert [r["epoch"] for r in rundir.read_metrics(run)] == [1, 2]
    assert rundir.read_summary(run)["test_acc"] == 0.5
    assert rundir.read_identity(run) == {"run_id": "abc", "poison_sha256": None}
    assert rundir.read_env(run) == {"device": "cpu"}
    record = run_record.load_run(run)
    assert (record.name, len(record.rows), record.config["seed"]) == ("x", 2, 0)
    assert rundir.snapshot_path(run, 3) == run / "snapshots" / "epoch-0003.safetensors"
    assert rundir.stats_file(run, "probes.json") == run / "stats" / "probes.json"


def test_sal_tags(tmp_path):
    run = _run(tmp_path)
    assert not sal_tags.has_tag(run, "t") and sal_tags.read_tag_settings(run, "t") is None
    rows_path, settings_path = sal_tags.tag_paths(run, "t")
    rows_path.parent.mkdir()
    rows_path.write_text(json.dumps({"epoch": 2, "sal": {"fc": 9.0}}) + "\n")
    settings_path.write_text("engine: fast\n")
    assert sal_tags.read_tag(run, "t") == [{"epoch": 2, "sal": {"fc": 9.0}}]
    assert sal_tags.read_tag_settings(run, "t") == {"engine": "fast"}
    tagged = run_record.load_run(run, sal_tag="t")
    assert [(r["epoch"], r["sal"], r["test_acc"]) for r in tagged.rows] == [(2, {"fc": 9.0}, 0.5)]
    with pytest.raises(UebenchError, match="plain name"):
        sal_tags.tag_paths(run, "../x")


@pytest.mark.parametrize("name, read", [
    (rundir.CONFIG, rundir.read_config),
    (rundir.METRICS, rundir.read_metrics),
    (rundir.SUMMARY, rundir.read_summary),
    (rundir.IDENTITY, rundir.read_identity),
    (rundir.ENV, rundir.read_env),
])
def test_a_broken_file_is_one_run_error(tmp_path, name, read):
    run = _run(tmp_path)
    (run / name).write_text("[1, 2" if name == rundir.CONFIG else "{broken\n")
    with pytest.raises(RunError, match=rf"{name} is corrupt \(.+\); delete"):
        read(run)


def test_missing_files(tmp_path):
    run = _run(tmp_path, complete=False)
    with pytest.raises(IncompleteRunError, match="no summary.json"):
        rundir.read_summary(run)
    with pytest.raises(IncompleteRunError, match="no summary.json.*resume"):
        run_record.load_run(run)
    assert len(run_record.load_run(run, require_complete=False).rows) == 2
    (run / rundir.CONFIG).unlink()
    with pytest.raises(RunError, match="not a training run directory: it has no config.yaml"):
        rundir.read_config(run)
    assert rundir.read_config_data(run, missing_ok=True) == {}
    (run / rundir.METRICS).unlink()
    assert rundir.read_metrics(run, missing_ok=True) == []
    with pytest.raises(RunError, match="it has no metrics.jsonl"):
        rundir.read_metrics(run)
    with pytest.raises(RunError, match="has no SAL measurement tagged 't'"):
        sal_tags.read_tag(run, "t")
    with pytest.raises(RunError, match="does not exist"):
        run_record.load_run(tmp_path / "nope")
