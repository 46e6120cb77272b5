"""Shared backbones for multi-task models: ``forward(x) -> (low, high)`` feature maps.

``low`` is an early, high-resolution map (skip connection for the dense decoders), ``high`` the
last stage. A backbone exposes ``low_channels`` and ``high_channels``; heads learn the spatial
sizes from a probe forward at build time (fixed sizes keep ``torch.fx`` tracing static).

- ``resnet18`` / ``resnet10``: the CIFAR ResNet trunk of :mod:`uebench.models.resnet` (He et al.,
  arXiv:1512.03385; kuangliu variant: 3x3 stride-1 stem, no max-pool, BasicBlocks 2-2-2-2 or
  1-1-1-1, strides 1-2-2-2) without pooling and linear layer; low = ``layer1`` (stride 1),
  high = ``layer4`` (stride 8). Module paths as in the classifier (``conv1``, ``layer2.0.conv1``,
  ``layer2.0.shortcut.0``), below ``backbone.``.
- ``lenet``: LeNet-5-scale trunk (LeCun et al., 1998): two 5x5 convs (6 and 16 channels x width),
  each with ReLU and 2x2 max-pool, padded to keep sizes ("same"), so low = stride 2,
  high = stride 4.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from uebench.models.base import scaled
from uebench.models.resnet import BasicBlock, ResNet
from uebench.registry import Registry

BackboneFn = Callable[..., nn.Module]
BACKBONES: Registry[BackboneFn] = Registry("multi-task backbone")


def register_backbone(name: str, *, description: str) -> Callable[[BackboneFn], BackboneFn]:
    """Register ``fn(*, in_channels: int, width: float) -> nn.Module`` returning (low, high)."""
    return BACKBONES.register(name, description=description)


class ResNetTrunk(ResNet):
    """The CIFAR ResNet of :mod:`uebench.models.resnet` minus pooling and ``linear``."""

    def __init__(self, num_blocks: tuple[int, int, int, int], in_channels: int,
                 width: float) -> None:
        super().__init__(BasicBlock, num_blocks, in_channels, 1, width)
        del self.linear  # per-task heads replace the classifier
        self.low_channels = self.conv1.out_channels
        self.high_channels = self.layer4[-1].conv2.out_channels

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = self.layer1(F.relu(self.bn1(self.conv1(x))))
        return low, self.layer4(self.layer3(self.layer2(low)))


class LeNetTrunk(nn.Module):
    """conv(5x5) -> ReLU -> max-pool, twice, with "same" padding."""

    def __init__(self, in_channels: int, width: float) -> None:
        super().__init__()
        self.low_channels, self.high_channels = scaled(6, width), scaled(16, width)
        self.conv1 = nn.Conv2d(in_channels, self.low_channels, 5, padding=2)
        self.conv2 = nn.Conv2d(self.low_channels, self.high_channels, 5, padding=2)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = self.pool(torch.relu(self.conv1(x)))
        return low, self.pool(torch.relu(self.conv2(low)))


@register_backbone("resnet18", description="CIFAR ResNet-18 trunk (20 convs), low stride 1, "
                   "high stride 8")
def resnet18(*, in_channels: int, width: float) -> nn.Module:
    return ResNetTrunk((2, 2, 2, 2), in_channels, width)


@register_backbone("resnet10", description="CIFAR ResNet-10 trunk (1-1-1-1 blocks, 12 convs)")
def resnet10(*, in_channels: int, width: float) -> nn.Module:
    return ResNetTrunk((1, 1, 1, 1), in_channels, width)


@register_backbone("lenet", description="LeNet-5-scale trunk (2 convs), low stride 2, high 4")
def lenet(*, in_channels: int, width: float) -> nn.Module:
    return LeNetTrunk(in_channels, width)
