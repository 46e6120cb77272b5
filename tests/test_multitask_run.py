"""Multi-task runs: config resolution and the run-directory contract (files, strict JSON,
summary last, resume bit-identical, reuse, refusal of another run, poisoned runs)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
import yaml

from uebench.errors import ConfigError, UebenchError
from uebench.multitask.config import (
    MultiTaskRunCfg,
    is_multitask_run,
    load_multitask_config,
    resolve_multitask_cfg,
)
from uebench.multitask.run import build_run_model, load_multitask_splits, train_multitask_run
from uebench.utils.io import safe_torch_load

pytestmark = pytest.mark.timeout(120)
TINY = ["data.options={n: 48, image_size: 16}", "data.test_size=24", "train.batch_size=16",
        "model.decoder_channels=8", "device=cpu"]
SAL = ["sal.enabled=true", "sal.options={probe_size: 8, eval_size: 8, steps: 1}"]


def tiny(*extra: str, epochs: int = 3, **flags) -> MultiTaskRunCfg:
    return resolve_multitask_cfg(overrides=[*TINY, *extra], epochs=epochs, **flags)


# ----------------------------------------------------------------------------- configuration
def test_resolution_layers(tmp_path: Path) -> None:
    cfg = resolve_multitask_cfg()
    assert cfg.data.name == "scenes" and cfg.train.augment == "flip"  # the scenes recipe
    assert cfg.train.lr == 0.05 and cfg.train.schedule == "cosine"
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"train": {"lr": 0.2, "epochs": 7}, "tasks": ["scene"]}))
    cfg = resolve_multitask_cfg(config_file=path, epochs=3, overrides=["train.lr=0.3"])
    assert (cfg.train.lr, cfg.train.epochs, cfg.tasks) == (0.3, 3, ("scene",))
    cfg = resolve_multitask_cfg(tasks="scene,depth", model="resnet10",
                                overrides=["weights.depth=2"])
    assert cfg.tasks == ("scene", "depth") and cfg.model.backbone == "resnet10"
    assert cfg.weights == {"depth": 2}


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"overrides": ["model.name=x"]}, "unknown config key"),
    ({"overrides": ["tasks=[scene, scene]"]}, "repeat"),
    ({"overrides": ["tasks=[scene]", "weights.depth=1"]}, "not one of tasks"),
    ({"overrides": ["weights.depth=-1"]}, "weights.depth"),
    ({"defense": "jpeg"}, "defenses are not available"),
    ({"overrides": ["data.name=nope"]}, "unknown multi-task dataset"),
])
def test_bad_settings_are_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(UebenchError, match=match):
        resolve_multitask_cfg(**kwargs)


def test_multi_fashion_is_never_flipped() -> None:
    assert resolve_multitask_cfg(dataset="multi-fashion-mnist").train.augment == "none"


# ----------------------------------------------------------------------------- run directories
class Crash(Exception):
    pass


def crash_at(epoch: int):
    def callback(ep):
        if ep.epoch == epoch:
            raise Crash
    return callback


def _rows(run: Path) -> list[dict]:
    drop = ("seconds", "train_seconds", "task_sal_seconds")  # wall times
    return [{k: v for k, v in json.loads(line).items() if k not in drop}
            for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_run_directory_contract_and_bit_identical_resume(tmp_path: Path) -> None:
    cfg = tiny(*SAL, tasks="scene,segment,depth,keypoints")
    ref = tmp_path / "ref"
    summary = train_multitask_run(cfg, ref, progress=False)
    for name in ("config.yaml", "identity.json", "env.json", "metrics.jsonl", "checkpoint.pt",
                 "summary.json"):
        assert (ref / name).is_file(), name
    assert not (ref / ".lock").exists()
    assert load_multitask_config(ref) == cfg and is_multitask_run(ref)
    for name in ("metrics.jsonl", "summary.json", "identity.json"):
        text = (ref / name).read_text()
        assert "NaN" not in text and "Infinity" not in text
        for line in text.splitlines() if name.endswith("jsonl") else [text]:
            json.loads(line, parse_constant=pytest.fail)  # NaN / Infinity would fail
    rows = _rows(ref)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    for task, metric in [("scene", "accuracy"), ("segment", "miou"), ("depth", "abs_rel"),
                         ("keypoints", "keypoint_error")]:
        assert f"test/{task}/{metric}" in rows[-1] and f"test/{task}/{metric}" in summary
        assert set(rows[-1]["task_sal"]) == {"scene", "segment", "depth", "keypoints"}
    # interrupted after epoch 2, then the same call again: the same weights and rows
    run = tmp_path / "run"
    with pytest.raises(Crash):
        train_multitask_run(cfg, run, callbacks=[crash_at(3)], progress=False)
    assert [r["epoch"] for r in _rows(run)] == [1, 2] and not (run / "summary.json").exists()
    resumed = train_multitask_run(cfg, run, progress=False)
    assert _rows(run) == rows
    a, b = safe_torch_load(ref / "checkpoint.pt"), safe_torch_load(run / "checkpoint.pt")
    assert all(torch.equal(v, b["model"][k]) for k, v in a["model"].items())
    assert {k: v for k, v in resumed.items() if "seconds" not in k} == {
        k: v for k, v in summary.items() if "seconds" not in k}
    # a complete run is reused; another config in the same directory is refused
    assert train_multitask_run(cfg, ref, progress=False) == summary
    with pytest.raises(ConfigError, match="differs in"):
        train_multitask_run(dataclasses.replace(cfg, seed=1), ref, progress=False)


def test_clean_and_poisoned_runs_start_alike_and_tasks_follow_the_config() -> None:
    cfg = tiny(tasks="depth,scene")
    splits = load_multitask_splits(cfg)
    a, b = build_run_model(cfg, splits.train), build_run_model(cfg, splits.train)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    assert a.task_names == ("depth", "scene")
    one = build_run_model(dataclasses.replace(cfg, tasks=("segment",)), splits.train)
    assert one.task_names == ("segment",)
    # the backbone's initial weights depend on the seed only, not on the heads
    assert torch.equal(one.backbone.conv1.weight, a.backbone.conv1.weight)


def test_poisoned_single_head_run(tmp_path: Path) -> None:
    """A poison labelled by the scene class trains a run for another task (segmentation)."""
    from uebench.multitask.generate import generate_for_run

    cfg = tiny(tasks="segment", epochs=1)
    generate_for_run(cfg, "random", tmp_path / "poison", progress=False)
    summary = train_multitask_run(dataclasses.replace(cfg, poison=str(tmp_path / "poison")),
                                  tmp_path / "run", progress=False)
    assert summary["poison"] == str(tmp_path / "poison") and summary["tasks"] == ["segment"]
    identity = json.loads((tmp_path / "run" / "identity.json").read_text())
    assert identity["poison_sha256"]
    smaller = dataclasses.replace(cfg, poison=str(tmp_path / "poison"),
                                  data=dataclasses.replace(cfg.data, train_size=40))
    with pytest.raises(UebenchError, match="40"):  # made for 48 images: refused, named
        train_multitask_run(smaller, tmp_path / "other", progress=False)
