"""Per-task losses (a registry) and the weighted multi-task loss (paper §3.4, arXiv:2509.08058).

Every loss is ``fn(output, target, spec, *, reduction="mean")`` (float32, differentiable in
``output``) registered with the task kinds it accepts. ``reduction="mean"`` gives the batch mean:
masked losses average over the *valid* elements of the whole batch (as
``F.cross_entropy(..., ignore_index=...)`` does) and return 0, not NaN, when a batch has none.
``reduction="none"`` gives one value per sample, (N,): the mean over that sample's own valid
elements (0 when it has none); :func:`sample_loss` wraps it as the per-sample loss of the SAL
engines. The two agree whenever every sample has the same number of valid elements (always for
``ce``, ``heatmap_mse``, ``heatmap_l1``); otherwise the batch mean weights samples by their valid
pixels, the per-sample mean weights them equally. The multi-task objective is the weighted sum
``sum_t w_t * L_t`` (the paper's EM search on task pairs uses the plain sum, Fig. 7).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F

from uebench.errors import UebenchError
from uebench.learnability.task import full_precision  # bf16 -> fp32; fp32/fp64 kept
from uebench.multitask.tasks import TaskSpec
from uebench.registry import Registry

VISIBLE = 0.5  # a keypoint channel counts as present where its target heat map peaks >= this
LossFn = Callable[..., torch.Tensor]  # (output, target, spec, *, reduction="mean") -> loss
REDUCTIONS = ("mean", "none")
TASK_LOSSES: Registry[LossFn] = Registry("task loss")


def register_loss(name: str, *, kinds: tuple[str, ...], description: str
                  ) -> Callable[[LossFn], LossFn]:
    """Register ``fn(output, target, spec, *, reduction="mean")`` for the given task kinds:
    a scalar batch mean, or (N,) per-sample values with ``reduction="none"``."""
    return TASK_LOSSES.register(name, kinds=kinds, description=description)


def check_dense(output: torch.Tensor, target: torch.Tensor, spec: TaskSpec) -> None:
    """Raise unless ``output`` is N x channels x H x W with the target's N, H, W."""
    n, hw = target.shape[0], tuple(target.shape[-2:])
    if output.dim() != 4 or output.shape[0] != n or output.shape[1] != spec.channels or tuple(
        output.shape[-2:]
    ) != hw:
        raise UebenchError(
            f"{spec.kind} output {tuple(output.shape)} does not fit target {tuple(target.shape)} "
            f"({spec.channels} channels): build the head for this task and image size"
        )


def valid_mask(target: torch.Tensor, spec: TaskSpec) -> torch.Tensor:
    """True where the target is not the task's ignore value."""
    if spec.ignore_value is None:
        return torch.ones_like(target, dtype=torch.bool)
    return target != spec.ignore_value


def masked_mean(values: torch.Tensor, valid: torch.Tensor,
                reduction: str = "mean") -> torch.Tensor:
    """Mean of ``values`` over ``valid`` (0 when nothing is valid; no NaN gradient): over the
    whole batch (``"mean"``) or per sample, (N,) (``"none"``)."""
    kept = torch.where(valid, values, torch.zeros_like(values))
    if reduction == "none":
        return kept.flatten(1).sum(1) / valid.flatten(1).sum(1).clamp_min(1)
    return kept.sum() / valid.sum().clamp_min(1)


def plain_mean(values: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Mean over every element of the batch, or of each sample (``"none"``: (N,))."""
    return values.flatten(1).mean(1) if reduction == "none" else values.mean()


@register_loss("ce", kinds=("classification",),
               description="cross-entropy; soft targets: -sum p log softmax (= KL + const)")
def cross_entropy(output: torch.Tensor, target: torch.Tensor, spec: TaskSpec, *,
                  reduction: str = "mean") -> torch.Tensor:
    """Logits N x C; target int64 N (class) or float N x C (probabilities, e.g. Taskonomy)."""
    if target.is_floating_point():
        return plain_mean(-(target * F.log_softmax(full_precision(output), 1)).sum(1), reduction)
    return F.cross_entropy(full_precision(output), target, reduction=reduction)


@register_loss("pixel_ce", kinds=("segmentation",),
               description="per-pixel cross-entropy, ignore label masked out")
def pixel_cross_entropy(output: torch.Tensor, target: torch.Tensor, spec: TaskSpec, *,
                        reduction: str = "mean") -> torch.Tensor:
    """Logits N x C x H x W; labels N x H x W (uint8/int64), ``ignore_value`` pixels left out."""
    check_dense(output, target, spec)
    valid = valid_mask(target, spec)
    labels = torch.where(valid, target.long(), torch.zeros((), dtype=torch.long,
                                                           device=target.device))
    per_pixel = F.cross_entropy(full_precision(output), labels, reduction="none")
    return masked_mean(per_pixel, valid, reduction)


@register_loss("masked_l1", kinds=("depth",), description="L1 over pixels with depth")
def masked_l1(output: torch.Tensor, target: torch.Tensor, spec: TaskSpec, *,
              reduction: str = "mean") -> torch.Tensor:
    """Depth N x 1 x H x W (metres); pixels whose target is ``ignore_value`` (missing) left out."""
    check_dense(output, target, spec)
    valid = valid_mask(target, spec)
    return masked_mean((full_precision(output) - target).abs(), valid, reduction)


@register_loss("heatmap_mse", kinds=("keypoints",), description="mean squared heat-map error")
def heatmap_mse(output: torch.Tensor, target: torch.Tensor, spec: TaskSpec, *,
                reduction: str = "mean") -> torch.Tensor:
    """Heat maps N x K x H x W in [0, 1]; mean over every element."""
    check_dense(output, target, spec)
    return plain_mean((full_precision(output) - target).pow(2), reduction)


@register_loss("heatmap_ce", kinds=("keypoints",),
               description="spatial-softmax cross-entropy per visible keypoint (Mask R-CNN)")
def heatmap_cross_entropy(output: torch.Tensor, target: torch.Tensor, spec: TaskSpec, *,
                          reduction: str = "mean") -> torch.Tensor:
    """Keypoint loss of Mask R-CNN (He et al., arXiv:1703.06870), with soft targets.

    Each channel of ``output`` (N x K x H x W logits) is a softmax over the H*W pixels; its
    target is the channel's heat map normalised to sum 1. Channels whose target peak is below
    :data:`VISIBLE` (absent keypoints) are left out; the result is the mean over the rest.
    """
    check_dense(output, target, spec)
    logp = F.log_softmax(full_precision(output).flatten(2), -1)
    heat = target.flatten(2)
    visible = heat.amax(-1) >= VISIBLE
    dist = heat / heat.sum(-1, keepdim=True).clamp_min(1e-12)
    return masked_mean(-(dist * logp).sum(-1), visible, reduction)


@register_loss("heatmap_l1", kinds=("keypoints", "depth"),
               description="mean absolute error over every element (Taskonomy's L1 tasks)")
def heatmap_l1(output: torch.Tensor, target: torch.Tensor, spec: TaskSpec, *,
               reduction: str = "mean") -> torch.Tensor:
    """Maps N x K x H x W; mean |output - target| over every element (nothing masked)."""
    check_dense(output, target, spec)
    return plain_mean((full_precision(output) - target).abs(), reduction)


def sample_loss(spec: TaskSpec) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The task's loss per sample, ``(outputs M x ..., targets M x ...) -> (M,)``: the pluggable
    loss of the SAL engines (:class:`uebench.learnability.task.SALTask`)."""
    fn = TASK_LOSSES.get(spec.loss)

    def per_sample(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return fn(output, target, spec, reduction="none")

    return per_sample


def multitask_loss(
    outputs: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor],
    tasks: Mapping[str, TaskSpec], weights: Mapping[str, float] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted multi-task loss ``sum_t w_t * L_t`` and the per-task losses.

    Args:
        outputs: the model's ``{task: output}``.
        targets: ``{task: target}`` for a batch.
        tasks: ``{task: TaskSpec}``; each spec names its loss.
        weights: ``{task: w_t}``; the loss covers exactly these tasks (a weight of 0 keeps the
            task's loss in ``per_task`` without training it). None = every task, weight 1.

    Returns:
        ``(total, per_task)``; the per-task losses keep their graph (per-task gradients).
    """
    weights = {t: 1.0 for t in tasks} if weights is None else dict(weights)
    missing = [t for t in weights if t not in tasks or t not in outputs or t not in targets]
    if missing or not weights:
        raise UebenchError(
            f"multitask_loss: no spec, output or target for task(s) {missing}; the model has "
            f"{sorted(outputs)}, the data {sorted(targets)}"
        )
    per_task = {t: TASK_LOSSES.get(tasks[t].loss)(outputs[t], targets[t], tasks[t])
                for t in weights}
    total = torch.stack([w * per_task[t] for t, w in weights.items()]).sum()
    return total, per_task
