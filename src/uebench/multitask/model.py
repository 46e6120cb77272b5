"""Multi-task network: in-model normalization, a shared backbone, one head per task.

The paper's multi-task experiments (§3.4, App. A.1-A.2; arXiv:2509.08058) train a ResNet backbone
with per-task heads on Taskonomy. :func:`build_multitask_model` builds that shape for any task
dict: ``forward(x) -> {task: output}`` with ``x`` float images in [0, 1], N x C x H x W.

Module paths are stable and are the SAL "layers" (every Conv2d/Linear weight,
:func:`uebench.models.layer_names`): ``backbone.<trunk path>`` for shared layers (e.g.
``backbone.layer1.0.conv1``) and ``heads.<task>.<name>`` for a task's own layers (e.g.
``heads.depth.fuse_conv``, ``heads.scene.linear``). :class:`TaskView` shows one task of a model
with the very same modules and paths and returns a single tensor, which is what the SAL engines
(``uebench.learnability``) trace. Everything traces with ``torch.fx.symbolic_trace``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from uebench.errors import UebenchError
from uebench.models.base import Normalize
from uebench.multitask.backbones import BACKBONES
from uebench.multitask.heads import ClassificationHead, DenseHead
from uebench.multitask.tasks import TaskSpec


class MultiTaskNet(nn.Module):
    """``normalize`` -> ``backbone`` -> ``heads[task]`` for every task, as a dict."""

    def __init__(self, backbone: nn.Module, heads: Mapping[str, nn.Module],
                 mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.backbone = backbone
        self.heads = nn.ModuleDict(dict(heads))
        self.task_names = tuple(heads)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        low, high = self.backbone(self.normalize(x))
        return {task: self.heads[task](low, high) for task in self.task_names}


class TaskView(nn.Module):
    """One task of a :class:`MultiTaskNet`, sharing its modules (same parameters, same paths).

    ``forward(x)`` returns that task's output tensor only; the other heads are not run.
    """

    def __init__(self, model: MultiTaskNet, task: str) -> None:
        super().__init__()
        if task not in model.heads:
            raise UebenchError(f"TaskView: no head '{task}'; the model has {list(model.heads)}")
        self.normalize = model.normalize
        self.backbone = model.backbone
        self.heads = nn.ModuleDict({task: model.heads[task]})
        self.task = task

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low, high = self.backbone(self.normalize(x))
        return self.heads[self.task](low, high)


def build_multitask_model(
    tasks: Mapping[str, TaskSpec], *, backbone: str = "resnet18", in_channels: int = 3,
    image_size: int | tuple[int, int] = 64, width: float = 1.0, decoder_channels: int = 64,
    mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
) -> MultiTaskNet:
    """A shared ``backbone`` with a head per task (dense tasks: :class:`DenseHead`).

    Args:
        tasks: ``{task: TaskSpec}`` (e.g. ``MultiTaskSet.tasks``); heads follow this order.
        backbone: :data:`~uebench.multitask.backbones.BACKBONES` key.
        in_channels: image channels.
        image_size: input side, or (H, W); dense outputs have this size.
        width: backbone channel multiplier.
        decoder_channels: width of every dense decoder.
        mean, std: per-channel normalization (defaults 0.5 / 0.5).
    """
    hw = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    trunk = BACKBONES.get(backbone)(in_channels=in_channels, width=width)
    was_training = trunk.training
    trunk.eval()  # probe the feature sizes without touching BatchNorm statistics
    with torch.no_grad():
        low, _ = trunk(torch.zeros(1, in_channels, *hw))
    trunk.train(was_training)
    low_size = (int(low.shape[2]), int(low.shape[3]))
    heads: dict[str, nn.Module] = {}
    for task, spec in tasks.items():
        if spec.dense:
            heads[task] = DenseHead(trunk.low_channels, trunk.high_channels, spec.channels,
                                    low_size, hw, decoder_channels)
        else:
            heads[task] = ClassificationHead(trunk.high_channels, spec.channels)
    mean = tuple(mean) if mean is not None else (0.5,) * in_channels
    std = tuple(std) if std is not None else (0.5,) * in_channels
    if len(mean) != in_channels or len(std) != in_channels:
        raise UebenchError(f"mean/std need {in_channels} values, got {len(mean)}/{len(std)}")
    return MultiTaskNet(trunk, heads, mean, std)
