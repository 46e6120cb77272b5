"""Per-task evaluation metrics (a registry), accumulated exactly over batches.

A metric is a pair of functions: ``stats(output, target, spec)`` returns a 1-D float64 tensor of
*summable* sufficient statistics for one batch (counts, sums, a confusion matrix), and
``value(stats, spec)`` turns the sum over all batches into the number. So a dataset-level mIoU or
RMSE does not depend on the batch size. A value with nothing to average over (no valid pixel, no
visible keypoint) is NaN.

================== ============== ===============================================================
metric             kinds          value
================== ============== ===============================================================
``accuracy``       classification fraction with argmax(output) == label (soft labels: their argmax)
``miou``           segmentation   mean over classes with a non-empty union of TP / (TP + FP + FN)
``pixel_accuracy`` segmentation   fraction of valid pixels labelled correctly
``abs_rel``        depth          mean over valid pixels of abs(pred - gt) / gt
``rmse``           depth          sqrt(mean over valid pixels of (pred - gt)^2), metres
``keypoint_error`` keypoints      mean pixel distance between the argmax of each predicted map
                                  and the target's, over channels whose target peak is >= 0.5
``heatmap_l1``     keypoints,     mean abs(pred - gt) over every element (Taskonomy's keypoint
                   depth          loss)
================== ============== ===============================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from uebench.multitask.losses import VISIBLE, check_dense, valid_mask
from uebench.multitask.tasks import TaskSpec
from uebench.registry import Registry

StatsFn = Callable[[torch.Tensor, torch.Tensor, TaskSpec], torch.Tensor]
ValueFn = Callable[[torch.Tensor, TaskSpec], float]


@dataclass(frozen=True)
class TaskMetric:
    """``stats`` per batch (summable, float64), ``value`` of the summed stats."""

    stats: StatsFn
    value: ValueFn
    kinds: tuple[str, ...]
    higher_is_better: bool


TASK_METRICS: Registry[TaskMetric] = Registry("task metric")


def _ratio(stats: torch.Tensor, spec: TaskSpec) -> float:
    return float(stats[0] / stats[1]) if float(stats[1]) > 0 else math.nan


def _pair(total: torch.Tensor, count: torch.Tensor | int) -> torch.Tensor:
    """``[total, count]`` as float64 on ``total``'s device (an int count would land on the CPU)."""
    count = torch.as_tensor(count, device=total.device)
    return torch.stack([total.double(), count.double()])


def _class_labels(target: torch.Tensor) -> torch.Tensor:
    return target.argmax(1) if target.is_floating_point() else target


def _accuracy(output: torch.Tensor, target: torch.Tensor, spec: TaskSpec) -> torch.Tensor:
    return _pair((output.argmax(1) == _class_labels(target)).sum(), target.shape[0])


def _confusion(output: torch.Tensor, target: torch.Tensor, spec: TaskSpec) -> torch.Tensor:
    """Flattened C x C confusion matrix (rows = truth, columns = prediction) of valid pixels."""
    check_dense(output, target, spec)
    valid = valid_mask(target, spec)
    truth = target.long()[valid]
    pred = output.argmax(1)[valid]
    c = spec.channels
    return torch.bincount(truth * c + pred, minlength=c * c).double()


def _miou(stats: torch.Tensor, spec: TaskSpec) -> float:
    cm = stats.view(spec.channels, spec.channels)
    tp = cm.diag()
    union = cm.sum(0) + cm.sum(1) - tp
    present = union > 0
    return float((tp[present] / union[present]).mean()) if bool(present.any()) else math.nan


def _pixel_accuracy(output: torch.Tensor, target: torch.Tensor, spec: TaskSpec) -> torch.Tensor:
    check_dense(output, target, spec)
    valid = valid_mask(target, spec)
    return _pair(((output.argmax(1) == target.long()) & valid).sum(), valid.sum())


def _depth_errors(output: torch.Tensor, target: torch.Tensor, spec: TaskSpec
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    check_dense(output, target, spec)
    valid = valid_mask(target, spec)
    return output.double()[valid], target.double()[valid]


def _abs_rel(output: torch.Tensor, target: torch.Tensor, spec: TaskSpec) -> torch.Tensor:
    pred, gt = _depth_errors(output, target, spec)
    return _pair(((pred - gt).abs() / gt).sum(), gt.numel())


def _squared(output: torch.Tensor, target: torch.Tensor, spec: TaskSpec) -> torch.Tensor:
    pred, gt = _depth_errors(output, target, spec)
    return _pair((pred - gt).pow(2).sum(), gt.numel())


def _root_ratio(stats: torch.Tensor, spec: TaskSpec) -> float:
    return math.sqrt(_ratio(stats, spec)) if float(stats[1]) > 0 else math.nan


def _peaks(maps: torch.Tensor) -> torch.Tensor:
    """(row, col) of each map's maximum: N x K x 2 (first maximum in row-major order)."""
    flat = maps.flatten(2).argmax(2)
    width = maps.shape[-1]
    return torch.stack([flat // width, flat % width], -1).double()


def _keypoint_error(output: torch.Tensor, target: torch.Tensor, spec: TaskSpec) -> torch.Tensor:
    check_dense(output, target, spec)
    visible = target.flatten(2).amax(2) >= VISIBLE
    dist = (_peaks(output) - _peaks(target)).pow(2).sum(-1).sqrt()
    return _pair(dist[visible].sum(), visible.sum())


def _abs_error(output: torch.Tensor, target: torch.Tensor, spec: TaskSpec) -> torch.Tensor:
    check_dense(output, target, spec)
    return _pair((output.double() - target.double()).abs().sum(), target.numel())


def register_metric(name: str, metric: TaskMetric) -> None:
    """Register a metric under ``name`` (its kinds and direction become registry metadata)."""
    TASK_METRICS.register(name, kinds=metric.kinds, higher_is_better=metric.higher_is_better)(
        metric
    )


register_metric("accuracy", TaskMetric(_accuracy, _ratio, ("classification",), True))
register_metric("miou", TaskMetric(_confusion, _miou, ("segmentation",), True))
register_metric("pixel_accuracy", TaskMetric(_pixel_accuracy, _ratio, ("segmentation",), True))
register_metric("abs_rel", TaskMetric(_abs_rel, _ratio, ("depth",), False))
register_metric("rmse", TaskMetric(_squared, _root_ratio, ("depth",), False))
register_metric("keypoint_error", TaskMetric(_keypoint_error, _ratio, ("keypoints",), False))
register_metric("heatmap_l1", TaskMetric(_abs_error, _ratio, ("keypoints", "depth"), False))


class MetricAccumulator:
    """Sums each task's metric statistics over batches; ``compute()`` gives ``{task/metric: x}``."""

    def __init__(self, tasks: Mapping[str, TaskSpec]) -> None:
        self.tasks = dict(tasks)
        self.totals: dict[tuple[str, str], torch.Tensor] = {}

    @torch.no_grad()
    def update(self, outputs: Mapping[str, torch.Tensor],
               targets: Mapping[str, torch.Tensor]) -> None:
        for task, spec in self.tasks.items():
            for name in spec.metrics:
                # stays on the device: no host sync per batch
                stats = TASK_METRICS.get(name).stats(outputs[task], targets[task], spec)
                key = (task, name)
                self.totals[key] = self.totals[key] + stats if key in self.totals else stats

    def compute(self) -> dict[str, float]:
        return {f"{task}/{name}": TASK_METRICS.get(name).value(stats.cpu(), self.tasks[task])
                for (task, name), stats in self.totals.items()}


def compute_metric(name: str, output: torch.Tensor, target: torch.Tensor, spec: TaskSpec) -> float:
    """One metric on one batch (tests, quick checks)."""
    metric = TASK_METRICS.get(name)
    return metric.value(metric.stats(output, target, spec), spec)
