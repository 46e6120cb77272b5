"""Multi-task batching and training: seeded order, aligned flips, learning every task."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from uebench.config import TrainCfg
from uebench.errors import ConfigError
from uebench.multitask import (
    MultiTaskLoader,
    MultiTaskSet,
    TaskSpec,
    build_multitask_model,
    fit_multitask,
    load_multitask,
)
from uebench.multitask.baselines import baseline_scores
from uebench.runtime import Runtime

SIDE = 32
CFG = TrainCfg(epochs=4, batch_size=32, lr=0.05, momentum=0.9, weight_decay=0.0,
               schedule="constant", augment="none", precision="fp32", channels_last="off")


def runtime(seed: int = 0) -> Runtime:
    return Runtime(device="cpu", seed=seed, progress=False)


def column_set(n: int = 6) -> MultiTaskSet:
    """Images and depth both equal to 1 + the column index: a flip must move both."""
    cols = torch.arange(4, dtype=torch.float32).expand(n, 1, 4, 4)
    return MultiTaskSet((cols * 10).to(torch.uint8).expand(n, 3, 4, 4).contiguous(),
                        {"d": cols + 1, "c": torch.arange(n) % 2},
                        {"d": TaskSpec("depth", 1), "c": TaskSpec("classification", 2)})


def test_loader_order_is_seeded_and_complete() -> None:
    loader = MultiTaskLoader(column_set(10), batch_size=4, shuffle=True)
    first = [tb["c"] for _, tb in loader.batches(torch.Generator().manual_seed(5))]
    again = [tb["c"] for _, tb in loader.batches(torch.Generator().manual_seed(5))]
    assert len(first) == 3 and all(torch.equal(a, b) for a, b in zip(first, again))
    order = torch.randperm(10, generator=torch.Generator().manual_seed(5))
    assert torch.equal(torch.cat(first), (torch.arange(10) % 2)[order])


def test_flips_keep_images_and_dense_targets_aligned() -> None:
    loader = MultiTaskLoader(column_set(64), batch_size=64, flip=True)
    xb, tb = next(loader.batches(torch.Generator().manual_seed(0)))
    flipped = xb[:, 0, 0, 0] > xb[:, 0, 0, 3]
    assert 0 < flipped.sum() < 64  # some samples flipped, some not
    assert torch.allclose(xb[:, :1] * 255 / 10 + 1, tb["d"])  # depth still matches the pixels
    assert torch.equal(tb["c"], torch.arange(64) % 2)  # labels untouched


def test_baselines_are_the_best_constant_guesses() -> None:
    tasks = {"c": TaskSpec("classification", 3), "d": TaskSpec("depth", 1, ignore_value=0.0)}
    x = torch.zeros(4, 1, 1, 2, dtype=torch.uint8)
    train = MultiTaskSet(x, {"c": torch.tensor([0, 1, 1, 2]),
                             "d": torch.tensor([1.0, 2.0, 10.0, 0.0, 3.0, 0.0, 0.0, 0.0])
                             .view(4, 1, 1, 2)}, tasks)
    test = MultiTaskSet(x[:2], {"c": torch.tensor([1, 0]),
                                "d": torch.tensor([2.0, 4.0, 0.0, 0.0]).view(2, 1, 1, 2)}, tasks)
    # majority class 1: accuracy 1/2; median valid depth (1, 2, 3, 10) -> 2: abs-rel (0 + 1/2) / 2
    scores = baseline_scores(train, test)
    assert scores["c/accuracy"] == 0.5 and scores["d/abs_rel"] == pytest.approx(0.25)


def test_a_tiny_model_learns_every_scene_task() -> None:
    # seeds 0-3 gave scene accuracy 0.33-0.44, mIoU 3.0-4.0x, abs-rel 0.47-0.58x and keypoint
    # error 0.61-0.67x the best constant predictor's
    train = load_multitask("scenes", "train", n=512, image_size=SIDE)
    test = load_multitask("scenes", "test", n=256, image_size=SIDE)
    torch.manual_seed(0)
    mean, std = train.channel_stats()
    model = build_multitask_model(train.tasks, backbone="lenet", image_size=SIDE, width=2.0,
                                  decoder_channels=16, mean=mean, std=std)
    rows = fit_multitask(model, train, cfg=CFG, rt=runtime(), test=test)
    last, bar = rows[-1], baseline_scores(train, test)
    assert {"train_loss", "train/depth/loss", "train/segment/miou", "test_loss",
            "test/keypoints/loss", "test/keypoints/keypoint_error"} <= set(last)
    assert last["train_loss"] < rows[0]["train_loss"]
    assert bar["scene/accuracy"] == 0.25  # balanced classes: the majority guess is chance
    assert last["test/scene/accuracy"] > bar["scene/accuracy"] + 0.05
    assert last["test/segment/miou"] > 2 * bar["segment/miou"]
    assert last["test/depth/abs_rel"] < 0.8 * bar["depth/abs_rel"]
    assert last["test/keypoints/keypoint_error"] < 0.8 * bar["keypoints/keypoint_error"]


def test_fit_is_deterministic_and_respects_weights() -> None:
    data = load_multitask("scenes", "train", n=48, image_size=16)
    cfg = replace(CFG, epochs=2, batch_size=16, augment="flip")

    def run() -> tuple[list[dict], torch.nn.Module]:
        torch.manual_seed(0)
        model = build_multitask_model(data.tasks, backbone="lenet", image_size=16)
        return fit_multitask(model, data, cfg=cfg, rt=runtime(3), weights={"scene": 1.0}), model

    (rows_a, model_a), (rows_b, model_b) = run(), run()
    drop = {"seconds", "train_seconds"}  # wall time: the only keys allowed to differ
    assert [{k: v for k, v in r.items() if k not in drop} for r in rows_a] == [
        {k: v for k, v in r.items() if k not in drop} for r in rows_b]
    assert all(torch.equal(a, b) for a, b in zip(model_a.state_dict().values(),
                                                 model_b.state_dict().values()))
    # only the scene loss was trained: the depth head never moved, its metrics are still reported
    torch.manual_seed(0)
    fresh = build_multitask_model(data.tasks, backbone="lenet", image_size=16)
    assert torch.equal(fresh.heads["depth"].out.weight, model_a.heads["depth"].out.weight)
    assert "train/depth/loss" not in rows_a[0] and "train/depth/abs_rel" in rows_a[0]


def test_crops_are_refused() -> None:
    data = load_multitask("scenes", "train", n=8, image_size=16)
    model = build_multitask_model(data.tasks, backbone="lenet", image_size=16)
    with pytest.raises(ConfigError, match="augment"):
        fit_multitask(model, data, cfg=TrainCfg(epochs=1), rt=runtime())
