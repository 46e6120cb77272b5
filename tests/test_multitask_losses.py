"""Every multi-task loss and metric against values computed by hand (in the comments)."""

from __future__ import annotations

import math

import pytest
import torch

from uebench.errors import UebenchError, UnknownNameError
from uebench.multitask import (
    TASK_LOSSES,
    TASK_METRICS,
    TaskSpec,
    check_task_specs,
    compute_metric,
    multitask_loss,
)
from uebench.multitask.metrics import MetricAccumulator

LN2, LN3 = math.log(2), math.log(3)
CLS = TaskSpec("classification", 2)
SEG = TaskSpec("segmentation", 2, ignore_value=255)
DEPTH = TaskSpec("depth", 1, ignore_value=0.0)
KEY = TaskSpec("keypoints", 2)


def loss(name: str, output: torch.Tensor, target: torch.Tensor, spec: TaskSpec) -> float:
    return float(TASK_LOSSES.get(name)(output, target, spec))


def dense(values: list[float], channels: int = 1) -> torch.Tensor:
    """1 x channels x 1 x W map from a flat list (channel-major)."""
    return torch.tensor(values).view(1, channels, 1, -1)


# ---------------------------------------------------------------------------------------- losses
def test_ce_hard_and_soft() -> None:
    logits = torch.tensor([[0.0, LN3], [0.0, 0.0]])  # softmax rows: [1/4, 3/4], [1/2, 1/2]
    # -ln(3/4) for sample 0 (label 1), ln 2 for sample 1 (label 0)
    assert loss("ce", logits, torch.tensor([1, 0]), CLS) == pytest.approx(
        (-math.log(0.75) + LN2) / 2, abs=1e-6)
    # soft [1/2, 1/2] on row 0: -(ln 1/4 + ln 3/4) / 2; one-hot [0, 1] on row 1: ln 2
    soft = torch.tensor([[0.5, 0.5], [0.0, 1.0]])
    expect = ((math.log(4) - math.log(0.75)) / 2 + LN2) / 2
    assert loss("ce", logits, soft, CLS) == pytest.approx(expect, abs=1e-6)


def test_pixel_ce_ignores_the_uncertain_label() -> None:
    logits = dense([0.0, 0.0, 7.0, LN3, 0.0, -7.0], channels=2)  # pixels: [0, ln3], [0, 0], ...
    labels = torch.tensor([[[0, 1, 255]]], dtype=torch.uint8)
    # pixel 0 label 0: -ln(1/4); pixel 1 label 1: ln 2; pixel 2 ignored whatever its logits
    assert loss("pixel_ce", logits, labels, SEG) == pytest.approx((math.log(4) + LN2) / 2, abs=1e-6)
    all_ignored = torch.full((1, 1, 3), 255, dtype=torch.uint8)
    out = logits.clone().requires_grad_()
    value = TASK_LOSSES.get("pixel_ce")(out, all_ignored, SEG)
    value.backward()
    assert float(value.detach()) == 0.0 and torch.equal(out.grad, torch.zeros_like(out))  # no NaN


def test_masked_l1_skips_missing_depth() -> None:
    pred, target = dense([1.0, 2.0, 3.0, 4.0]), dense([1.5, 0.0, 2.0, 6.0])
    assert loss("masked_l1", pred, target, DEPTH) == pytest.approx((0.5 + 1 + 2) / 3)


def test_heatmap_losses() -> None:
    pred, target = dense([0.0, 1.0, 0.2, 0.2], 2), dense([0.5, 0.5, 0.2, 0.6], 2)
    assert loss("heatmap_mse", pred, target, KEY) == pytest.approx((0.25 + 0.25 + 0 + 0.16) / 4)
    assert loss("heatmap_l1", pred, target, KEY) == pytest.approx((0.5 + 0.5 + 0 + 0.4) / 4)


def test_heatmap_ce_is_spatial_softmax_ce_over_visible_keypoints() -> None:
    logits = dense([0.0, 0.0, LN2, 0.0, 5.0, 0.0, 0.0, 0.0], 2)  # channel 0 softmax: 1,1,2,1 / 5
    target = dense([0.0, 0.0, 1.0, 0.0, 0.1, 0.2, 0.0, 0.0], 2)  # channel 1 peaks < 0.5: absent
    assert loss("heatmap_ce", logits, target, KEY) == pytest.approx(-math.log(0.4), abs=1e-6)
    soft = dense([0.0, 0.5, 1.0, 0.5, 0.0, 0.0, 0.0, 0.0], 2)  # normalised: 0, 1/4, 1/2, 1/4
    expect = -(0.25 * math.log(0.2) + 0.5 * math.log(0.4) + 0.25 * math.log(0.2))
    assert loss("heatmap_ce", logits, soft, KEY) == pytest.approx(expect, abs=1e-6)


def test_dense_losses_reject_mismatched_outputs() -> None:
    with pytest.raises(UebenchError, match="does not fit"):
        loss("masked_l1", torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 2, 2), DEPTH)


def test_multitask_loss_weights_and_per_task_graph() -> None:
    tasks = {"a": CLS, "d": DEPTH}
    logits = torch.tensor([[0.0, 0.0]], requires_grad=True)
    depth = dense([1.0, 3.0]).requires_grad_()
    outputs, targets = {"a": logits, "d": depth}, {"a": torch.tensor([0]), "d": dense([2.0, 0.0])}
    total, per = multitask_loss(outputs, targets, tasks)  # ln 2 + |1 - 2|
    assert float(total.detach()) == pytest.approx(LN2 + 1.0, abs=1e-6)
    total, per = multitask_loss(outputs, targets, tasks, {"a": 2.0, "d": 0.5})
    assert float(total.detach()) == pytest.approx(2 * LN2 + 0.5, abs=1e-6)
    per["d"].backward()  # per-task losses keep their graph
    assert depth.grad is not None and logits.grad is None
    total, per = multitask_loss(outputs, targets, tasks, {"d": 1.0})
    assert set(per) == {"d"} and float(total.detach()) == pytest.approx(1.0)
    with pytest.raises(UebenchError, match="no spec"):
        multitask_loss(outputs, targets, tasks, {"x": 1.0})


# --------------------------------------------------------------------------------------- metrics
def test_accuracy_hard_and_soft() -> None:
    logits = torch.tensor([[2.0, 1.0], [0.0, 1.0], [1.0, 0.0], [0.0, 3.0]])
    assert compute_metric("accuracy", logits, torch.tensor([0, 1, 1, 1]), CLS) == 0.75
    soft = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.3, 0.7]])  # argmax 0, 1, 1, 1
    assert compute_metric("accuracy", logits, soft, CLS) == 0.75


def test_miou_and_pixel_accuracy() -> None:
    spec3 = TaskSpec("segmentation", 3, ignore_value=255)
    # truth 0 0 1 1 255, prediction 0 1 1 1 (2): class 0 IoU 1/2, class 1 IoU 2/3, class 2 absent
    pred = torch.tensor([0, 1, 1, 1, 2])
    logits = torch.nn.functional.one_hot(pred, 3).float().T.reshape(1, 3, 1, 5)
    truth = torch.tensor([[[0, 0, 1, 1, 255]]])
    assert compute_metric("miou", logits, truth, spec3) == pytest.approx((0.5 + 2 / 3) / 2)
    assert compute_metric("pixel_accuracy", logits, truth, spec3) == pytest.approx(0.75)


def test_depth_metrics() -> None:
    pred, target = dense([1.0, 2.0, 3.0, 4.0]), dense([2.0, 0.0, 2.0, 5.0])
    # |1-2|/2 + |3-2|/2 + |4-5|/5 over 3 valid pixels; squared errors 1, 1, 1
    assert compute_metric("abs_rel", pred, target, DEPTH) == pytest.approx(1.2 / 3)
    assert compute_metric("rmse", pred, target, DEPTH) == pytest.approx(1.0)
    assert compute_metric("heatmap_l1", pred, target, DEPTH) == pytest.approx(
        (1 + 2 + 1 + 1) / 4)
    assert math.isnan(compute_metric("rmse", pred, torch.zeros_like(target), DEPTH))


def test_keypoint_error() -> None:
    target = torch.zeros(1, 3, 3, 4)
    target[0, 0, 1, 2] = 1.0  # visible, peak at (row 1, col 2)
    target[0, 1, 0, 0] = 0.9  # visible, peak at (0, 0)
    target[0, 2, 2, 3] = 0.3  # absent (peak < 0.5)
    pred = torch.zeros(1, 3, 3, 4)
    pred[0, 0, 2, 0] = 5.0  # off by (1, -2): sqrt(5)
    pred[0, 1, 0, 0] = 1.0  # exact
    pred[0, 2, 0, 0] = 1.0  # ignored
    assert compute_metric("keypoint_error", pred, target, TaskSpec("keypoints", 3)) == (
        pytest.approx(math.sqrt(5) / 2))


def test_accumulated_metrics_equal_whole_split_values() -> None:
    gen = torch.Generator().manual_seed(0)
    spec = TaskSpec("segmentation", 4, ignore_value=255)
    logits = torch.randn(6, 4, 5, 5, generator=gen)
    truth = torch.randint(0, 4, (6, 5, 5), generator=gen)
    truth[0, 0] = 255
    depth_pred = torch.rand(6, 1, 5, 5, generator=gen) + 0.5
    depth_true = torch.rand(6, 1, 5, 5, generator=gen) + 0.5
    tasks = {"s": spec, "d": DEPTH}
    acc = MetricAccumulator(tasks)
    for i, j in ((0, 2), (2, 5), (5, 6)):  # uneven batches
        acc.update({"s": logits[i:j], "d": depth_pred[i:j]},
                   {"s": truth[i:j], "d": depth_true[i:j]})
    got = acc.compute()
    assert got["s/miou"] == pytest.approx(compute_metric("miou", logits, truth, spec))
    assert got["d/rmse"] == pytest.approx(compute_metric("rmse", depth_pred, depth_true, DEPTH))


def test_specs_must_match_their_loss_and_metric_kinds() -> None:
    check_task_specs({"d": DEPTH, "k": KEY, "c": CLS, "s": SEG})  # the defaults fit
    with pytest.raises(UebenchError, match="'ce' is for"):
        check_task_specs({"d": TaskSpec("depth", 1, loss="ce")})
    with pytest.raises(UebenchError, match="'miou' is for"):
        check_task_specs({"k": TaskSpec("keypoints", 1, metrics=("miou",))})
    with pytest.raises(UnknownNameError, match="task kind"):
        TaskSpec("regression", 1)


def test_every_registered_loss_and_metric_is_checked_here() -> None:
    # a new loss or metric must come with a hand-computed test in this file
    assert set(TASK_LOSSES.names()) == {"ce", "pixel_ce", "masked_l1", "heatmap_mse",
                                        "heatmap_l1", "heatmap_ce"}
    assert set(TASK_METRICS.names()) == {"accuracy", "miou", "pixel_accuracy", "abs_rel", "rmse",
                                         "keypoint_error", "heatmap_l1"}


# ------------------------------------------------------------------------- per-sample losses
def _batch(kind: str, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, TaskSpec]:
    """3 samples of 2 x 4 maps with a different number of valid elements per sample."""
    if kind == "classification":
        return torch.randn(3, 2, generator=gen), torch.tensor([1, 0, 1]), CLS
    out = torch.randn(3, 2, 2, 4, generator=gen)
    if kind == "segmentation":
        labels = torch.randint(0, 2, (3, 2, 4), generator=gen).to(torch.uint8)
        labels[0, 0, :3] = 255  # sample 0: 5 valid pixels; sample 2: none
        labels[2] = 255
        return out, labels, SEG
    if kind == "depth":
        depth = torch.rand(3, 1, 2, 4, generator=gen) + 0.5
        depth[1, 0, 0] = 0.0  # missing
        depth[2] = 0.0
        return out[:, :1], depth, DEPTH
    heat = torch.rand(3, 2, 2, 4, generator=gen) * 0.4
    heat[0, 0, 1, 2] = 1.0  # channel 0 of sample 0 visible; sample 2: nothing visible
    heat[1, :, 0, 0] = 0.9
    return out, heat, KEY


@pytest.mark.parametrize("name", TASK_LOSSES.names())
def test_per_sample_losses_are_each_sample_on_its_own(name: str) -> None:
    """reduction='none' = the batch-mean loss of each sample alone (0 without valid elements);
    the pluggable SAL loss (sample_loss) is exactly that."""
    from uebench.multitask.losses import sample_loss

    kind = TASK_LOSSES.meta(name)["kinds"][0]
    output, target, spec = _batch(kind, torch.Generator().manual_seed(len(name)))
    spec = TaskSpec(spec.kind, spec.channels, ignore_value=spec.ignore_value, loss=name)
    fn = TASK_LOSSES.get(name)
    per = fn(output, target, spec, reduction="none")
    assert per.shape == (3,)
    alone = torch.stack([fn(output[i:i + 1], target[i:i + 1], spec) for i in range(3)])
    assert torch.allclose(per, alone, atol=1e-6)
    assert torch.equal(sample_loss(spec)(output, target), per)
    if name in ("ce", "heatmap_mse", "heatmap_l1"):
        # every sample has the same number of elements: the batch mean is the mean of samples
        assert float(fn(output, target, spec)) == pytest.approx(float(per.mean()), abs=1e-6)
