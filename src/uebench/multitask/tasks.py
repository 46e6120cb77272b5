"""Task specifications for multi-task data (paper §3.4, Ye et al., ICLR 2025, arXiv:2509.08058).

A multi-task dataset carries one target tensor per task and a :class:`TaskSpec` saying how to read
it. The four task *kinds* of the paper's Taskonomy setting (Scene Cls., Segm.2D, Depth Euc.,
Keyp.2d) fix the target format; each kind is registered in :data:`TASK_KINDS` with its checks,
whether its head is dense (per pixel) and its default loss and metrics:

=============== ============================= ================================================
kind            target (N samples, H x W)     values
=============== ============================= ================================================
classification  int64 (N,) or float32 (N, C)  class index in [0, C), or a probability row
                                              (soft labels: Taskonomy's distilled scene scores)
segmentation    uint8 or int64 (N, H, W)      class index in [0, C) or ``ignore_value``
depth           float32 (N, 1, H, W)          depth > 0 (metres), ``ignore_value`` = missing
keypoints       float32 (N, K, H, W)          heat maps in [0, 1] (one channel per keypoint)
=============== ============================= ================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from uebench.errors import UebenchError
from uebench.registry import Registry


@dataclass(frozen=True)
class TaskSpec:
    """How to read, predict and score one task's targets.

    Args:
        kind: a :data:`TASK_KINDS` key.
        channels: output channels of the task's head (classes for classification/segmentation,
            1 for depth, K keypoint heat maps).
        classes: class names (classification, segmentation); ``channels == len(classes)``.
        ignore_value: segmentation label or depth value that marks a pixel to leave out of the loss
            and the metrics (Taskonomy's "uncertain" label, missing depth); None = none.
        loss: :data:`uebench.multitask.losses.TASK_LOSSES` key ("" = the kind's default).
        metrics: :data:`uebench.multitask.metrics.TASK_METRICS` keys (() = the kind's defaults).
        info: free-form notes (units, encodings), saved with results.
    """

    kind: str
    channels: int
    classes: tuple[str, ...] = ()
    ignore_value: float | None = None
    loss: str = ""
    metrics: tuple[str, ...] = ()
    info: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        kind = TASK_KINDS.get(self.kind)
        if self.channels < 1:
            raise UebenchError(f"TaskSpec.channels must be >= 1, got {self.channels}")
        if self.classes and len(self.classes) != self.channels:
            raise UebenchError(
                f"TaskSpec: {len(self.classes)} class names for {self.channels} channels"
            )
        if not self.loss:
            object.__setattr__(self, "loss", kind.default_loss)
        if not self.metrics:
            object.__setattr__(self, "metrics", kind.default_metrics)

    @property
    def dense(self) -> bool:
        """Whether the task predicts a map (N x channels x H x W) rather than a vector."""
        return TASK_KINDS.get(self.kind).dense

    def check(self, name: str, target: torch.Tensor, n: int, hw: tuple[int, int]) -> None:
        """Raise :class:`UebenchError` unless ``target`` has this kind's format (n images, HxW)."""
        TASK_KINDS.get(self.kind).check(self, name, target, n, hw)


@dataclass(frozen=True)
class TaskKind:
    """A task kind: target check, dense or not, default loss and metrics."""

    dense: bool
    default_loss: str
    default_metrics: tuple[str, ...]
    check: Callable[[TaskSpec, str, torch.Tensor, int, tuple[int, int]], None]


TASK_KINDS: Registry[TaskKind] = Registry("task kind")


def _fail(name: str, what: str) -> None:
    raise UebenchError(f"task '{name}': {what}")


def _check_shape(name: str, t: torch.Tensor, shape: tuple[int, ...], dtypes: tuple) -> None:
    if t.dtype not in dtypes or tuple(t.shape) != shape:
        want = " or ".join(str(d) for d in dtypes)
        _fail(name, f"target must be {want} of shape {shape}, got {t.dtype} {tuple(t.shape)}")


def _check_labels(spec: TaskSpec, name: str, labels: torch.Tensor) -> None:
    values = labels.long()
    bad = (values < 0) | (values >= spec.channels)
    if spec.ignore_value is not None:
        bad &= values != spec.ignore_value
    if bool(bad.any()):
        _fail(name, f"labels outside [0, {spec.channels}) (and not the ignore value): "
              f"{sorted(set(values[bad].tolist()))[:5]}")


def _check_classification(spec: TaskSpec, name: str, t: torch.Tensor, n: int,
                          hw: tuple[int, int]) -> None:
    if t.dtype == torch.int64:
        _check_shape(name, t, (n,), (torch.int64,))
        _check_labels(spec, name, t)
        return
    _check_shape(name, t, (n, spec.channels), (torch.float32,))
    if bool((t < 0).any()) or not torch.allclose(t.sum(1), torch.ones(n), atol=1e-3):
        _fail(name, "soft labels must be non-negative rows that sum to 1")


def _check_segmentation(spec: TaskSpec, name: str, t: torch.Tensor, n: int,
                        hw: tuple[int, int]) -> None:
    _check_shape(name, t, (n, *hw), (torch.uint8, torch.int64))
    _check_labels(spec, name, t)


def _check_depth(spec: TaskSpec, name: str, t: torch.Tensor, n: int, hw: tuple[int, int]) -> None:
    _check_shape(name, t, (n, 1, *hw), (torch.float32,))
    nonpositive = t <= 0
    if spec.ignore_value is not None:
        nonpositive &= t != spec.ignore_value
    if not bool(torch.isfinite(t).all()) or bool(nonpositive.any()):
        _fail(name, "depth must be finite, > 0 where valid (missing pixels = ignore_value)")


def _check_keypoints(spec: TaskSpec, name: str, t: torch.Tensor, n: int,
                     hw: tuple[int, int]) -> None:
    _check_shape(name, t, (n, spec.channels, *hw), (torch.float32,))
    if bool((t < 0).any()) or bool((t > 1).any()):
        _fail(name, "keypoint heat maps must lie in [0, 1]")


TASK_KINDS.register("classification")(
    TaskKind(False, "ce", ("accuracy",), _check_classification)
)
TASK_KINDS.register("segmentation")(
    TaskKind(True, "pixel_ce", ("miou", "pixel_accuracy"), _check_segmentation)
)
TASK_KINDS.register("depth")(TaskKind(True, "masked_l1", ("abs_rel", "rmse"), _check_depth))
TASK_KINDS.register("keypoints")(
    TaskKind(True, "heatmap_mse", ("keypoint_error", "heatmap_l1"), _check_keypoints)
)
