"""Post-hoc SAL from per-epoch snapshots equals the in-training measurement."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from uebench.cli import main
from uebench.config import resolve_run_cfg
from uebench.errors import UebenchError
from uebench.learnability.posthoc import (
    measure_run,
    read_tag,
    recalibrate_batchnorm,
    select_epochs,
    snapshot_epochs,
)
from uebench.learnability.report import recompute
from uebench.train.checkpoint import load_snapshot
from uebench.train.run import train_run

FAST = {"probe_size": 64}


def _cfg(**over):
    cfg = resolve_run_cfg(dataset="synthetic", model="tiny", train_size=96, test_size=64, epochs=3,
                          overrides=["train.snapshots=true", "train.batch_size=32",
                                     "sal.enabled=true", "sal.options.probe_size=64"])
    return dataclasses.replace(cfg, **over)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("posthoc") / "run"
    train_run(_cfg(), out, progress=False)
    return out


def test_snapshots_written_for_every_epoch(run_dir):
    assert snapshot_epochs(run_dir) == [1, 2, 3]
    last = load_snapshot(run_dir, 3)
    ckpt = torch.load(run_dir / "checkpoint.pt", weights_only=True)["model"]
    assert set(last) == set(ckpt)
    assert all(torch.equal(last[k], ckpt[k]) for k in ckpt)


def test_posthoc_equals_in_training_sal(run_dir):
    from uebench.utils.io import read_jsonl

    rows = measure_run(run_dir, tag="again", engine="fast", options=FAST, progress=False)
    in_loop = read_jsonl(run_dir / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    for post, live in zip(rows, in_loop):
        # same seeds, same data, same weights: equal up to fp32 rounding (kernels may pick other
        # code paths for differently aligned tensors)
        assert post["sal"] == pytest.approx(live["sal"], rel=1e-4, abs=1e-6)
        assert post["sal_origin"] == pytest.approx(live["sal_origin"], rel=1e-6)
    live_table = recompute(run_dir, [run_dir])
    post_table = recompute(run_dir, [run_dir], sal_tag="again")
    assert post_table["beta"] == pytest.approx(live_table["beta"], rel=1e-4)


def test_every_keeps_last_epoch_and_resumes(run_dir):
    assert select_epochs([1, 2, 3, 4, 5], every=2) == [1, 3, 5]
    assert select_epochs([1, 2, 3], epochs=[2]) == [2]
    with pytest.raises(UebenchError, match="no snapshot"):
        select_epochs([1, 2], epochs=[7])
    measure_run(run_dir, tag="sub", options=FAST, every=2, progress=False)
    assert [r["epoch"] for r in read_tag(run_dir, "sub")] == [1, 3]
    rows = measure_run(run_dir, tag="sub", options=FAST, progress=False)  # adds epoch 2 only
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    table = recompute(run_dir, [run_dir], sal_tag="sub")
    assert table["runs"][0]["epochs"] == 3


def test_tag_settings_cannot_be_mixed(run_dir):
    measure_run(run_dir, tag="mix", options=FAST, epochs=[3], progress=False)
    with pytest.raises(UebenchError, match="different settings"):
        measure_run(run_dir, tag="mix", eps=0.1, options=FAST, epochs=[3], progress=False)
    with pytest.raises(UebenchError, match="plain name"):
        measure_run(run_dir, tag="../x", options=FAST, progress=False)


def test_run_without_snapshots_is_refused(tmp_path):
    out = tmp_path / "plain"
    cfg = resolve_run_cfg(dataset="synthetic", model="tiny", train_size=64, test_size=32,
                          epochs=1)
    train_run(cfg, out, progress=False)
    with pytest.raises(UebenchError, match="train.snapshots=true"):
        measure_run(out, tag="t", options=FAST, progress=False)
    with pytest.raises(UebenchError, match="no SAL measurement tagged"):
        recompute(out, [out], sal_tag="t")


def test_recalibrate_batchnorm_changes_only_statistics(run_dir):
    from uebench.train.run import build_model, load_splits
    from uebench.train.rundir import read_config

    cfg = read_config(run_dir)
    splits = load_splits(cfg)
    model = build_model(cfg, splits.train)
    model.load_state_dict(load_snapshot(run_dir, 1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    recalibrate_batchnorm(model, splits.train.x, batch_size=32)
    after = model.state_dict()
    for name, p in model.named_parameters():
        assert torch.equal(before[name], p.detach())
    changed = [k for k in after if "running_mean" in k and not torch.equal(before[k], after[k])]
    assert changed and not model.training


def test_subset_measurement_is_recorded_and_repeatable(run_dir):
    a = measure_run(run_dir, tag="sub64", options=FAST, epochs=[3], subset=48, progress=False)
    from uebench.utils.io import read_jsonl

    settings = (run_dir / "sal" / "sub64.yaml").read_text()
    assert "subset: 48" in settings
    again = read_jsonl(run_dir / "sal" / "sub64.jsonl")
    assert a == again
    with pytest.raises(UebenchError, match="different settings"):
        measure_run(run_dir, tag="sub64", options=FAST, epochs=[3], subset=32, progress=False)


def test_tag_measured_on_different_epochs_is_refused(run_dir, tmp_path):
    """A tag still being measured (or interrupted) in one run would compare #LP over other
    epochs: recompute refuses instead of printing a UD."""
    import shutil

    other = tmp_path / "other"
    shutil.copytree(run_dir, other)
    measure_run(run_dir, tag="part", options=FAST, progress=False)
    measure_run(other, tag="part", options=FAST, epochs=[3], progress=False)
    with pytest.raises(UebenchError, match="covers epochs"):
        recompute(run_dir, [other], sal_tag="part")
    measure_run(other, tag="part", options=FAST, progress=False)  # finish it
    assert recompute(run_dir, [other], sal_tag="part")["runs"][1]["epochs"] == 3


def test_official_origin_can_be_read_from_another_metrics_field(run_dir):
    """A run trained without drop_last has a short last batch, which the paper code's running-
    loss formula scales down; ``origin_from="train_loss"`` takes the per-image running mean (what
    that formula gives under the paper's drop_last=True) and records the choice."""
    from uebench.utils.io import read_jsonl

    metrics = {r["epoch"]: r for r in read_jsonl(run_dir / "metrics.jsonl")}
    rows = measure_run(run_dir, tag="o-mean", options=FAST, origin="official", epochs=[3],
                       origin_from="train_loss", progress=False)
    assert rows[0]["sal_origin"] == pytest.approx(metrics[3]["train_loss"])
    assert rows[0]["sal_origin_kind"] == "official"
    assert "origin_from: train_loss" in (run_dir / "sal" / "o-mean.yaml").read_text()
    with pytest.raises(UebenchError, match="origin_from='nope'.*loss fields there"):
        measure_run(run_dir, tag="o-bad", options=FAST, origin="official", epochs=[3],
                    origin_from="nope", progress=False)
    assert not (run_dir / "sal" / "o-bad.yaml").exists()  # the typo did not claim the tag
    assert main(["sal", str(run_dir), "--tag", "o-mean", "--origin", "official", "--epochs", "3",
                 "--origin-from", "train_loss", "--option", "probe_size=64", "--quiet"]) == 0
