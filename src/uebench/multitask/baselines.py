"""Input-independent predictors: the scores a multi-task model must beat to have learned a task.

For each task kind the best constant guess from the training targets, scored on the test split
with the task's own metrics (so "above chance" is measured, not assumed):

- classification: the most frequent training class (soft labels: of their argmax);
- segmentation: the most frequent valid training pixel class, everywhere;
- depth: the median valid training depth, everywhere (the L1-optimal constant);
- keypoints: the mean training heat map (as logits it peaks where keypoints are most frequent).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from uebench.multitask.dataset import MultiTaskSet
from uebench.multitask.losses import valid_mask
from uebench.multitask.metrics import MetricAccumulator
from uebench.multitask.tasks import TaskSpec

ConstantFn = Callable[[torch.Tensor, TaskSpec, int], torch.Tensor]


def _one_hot_scores(label: int, channels: int) -> torch.Tensor:
    scores = torch.zeros(channels)
    scores[label] = 1.0
    return scores


def _classification(train: torch.Tensor, spec: TaskSpec, n: int) -> torch.Tensor:
    labels = train.argmax(1) if train.is_floating_point() else train
    majority = int(torch.bincount(labels, minlength=spec.channels).argmax())
    return _one_hot_scores(majority, spec.channels).expand(n, -1)


def _segmentation(train: torch.Tensor, spec: TaskSpec, n: int) -> torch.Tensor:
    labels = train.long()[valid_mask(train, spec)]
    majority = int(torch.bincount(labels, minlength=spec.channels).argmax())
    scores = _one_hot_scores(majority, spec.channels)
    return scores.view(1, -1, 1, 1).expand(n, -1, *train.shape[-2:])


def _depth(train: torch.Tensor, spec: TaskSpec, n: int) -> torch.Tensor:
    median = train[valid_mask(train, spec)].median()
    return median.expand(n, *train.shape[1:])


def _keypoints(train: torch.Tensor, spec: TaskSpec, n: int) -> torch.Tensor:
    return train.mean(0, keepdim=True).expand(n, -1, -1, -1)


CONSTANT: dict[str, ConstantFn] = {
    "classification": _classification, "segmentation": _segmentation, "depth": _depth,
    "keypoints": _keypoints,
}


def constant_outputs(train: MultiTaskSet, n: int) -> dict[str, torch.Tensor]:
    """``{task: output}`` of the constant predictors for ``n`` samples (model output format)."""
    return {task: CONSTANT[spec.kind](train.targets[task], spec, n)
            for task, spec in train.tasks.items()}


def baseline_scores(train: MultiTaskSet, test: MultiTaskSet) -> dict[str, float]:
    """``{task/metric: value}`` of the constant predictors on ``test``."""
    acc = MetricAccumulator(test.tasks)
    acc.update(constant_outputs(train, len(test)), test.targets)
    return acc.compute()
