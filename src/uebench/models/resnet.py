"""CIFAR ResNet-18 / ResNet-50 (He et al., 2016, arXiv:1512.03385), kuangliu/pytorch-cifar style.

The variant the paper (and APBench's ``r18`` / ``r50``) trains: a 3x3 stride-1 stem conv with no
max-pool, four stages of BasicBlocks (ResNet-18: 2-2-2-2) or Bottlenecks (ResNet-50: 3-4-6-3) with
strides 1-2-2-2, a 1x1 conv + BN shortcut wherever the block changes shape, global average pooling
and one Linear head. All convs are bias-free and followed by BatchNorm.

kuangliu pools with ``avg_pool2d(out, 4)``, which is global pooling only for 32x32 inputs; we use
``adaptive_avg_pool2d(out, 1)`` (identical at 32x32 and 28x28, where the last stage is 4x4) so any
input side works. Layers (every Conv2d/Linear weight, see :func:`uebench.models.base.layer_names`):
ResNet-18 has 21 (stem, 16 block convs, 3 shortcuts, linear), ResNet-50 has 54 (stem, 48 block
convs, 4 shortcuts, linear). At width 1 with 10 classes: 11,173,962 and 23,520,842 parameters.

Input: float N x C x H x W (already normalized by the Classifier wrapper); output: N x num_classes
logits.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from uebench.models.base import register_model, scaled

# (in_planes, planes, stride) -> block; the block's output has planes * expansion channels
BlockFn = Callable[[int, int, int], nn.Module]


def shortcut(in_planes: int, out_planes: int, stride: int, *, norm: bool = True) -> nn.Sequential:
    """Identity (empty Sequential) if the shape is kept, else a strided 1x1 conv (+ BN if ``norm``).

    An empty ``nn.Sequential`` keeps the kuangliu module paths (``layer2.0.shortcut.0``) and traces
    under ``torch.fx`` as the identity.
    """
    if stride == 1 and in_planes == out_planes:
        return nn.Sequential()
    conv = nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(out_planes)) if norm else nn.Sequential(conv)


def make_stage(
    block: BlockFn, in_planes: int, planes: int, num_blocks: int, stride: int, expansion: int = 1
) -> tuple[nn.Sequential, int]:
    """``num_blocks`` blocks, the first with ``stride``; returns the stage and its out channels."""
    layers = []
    for s in [stride] + [1] * (num_blocks - 1):
        layers.append(block(in_planes, planes, s))
        in_planes = planes * expansion
    return nn.Sequential(*layers), in_planes


class BasicBlock(nn.Module):
    """Two 3x3 convs with BN; relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = shortcut(in_planes, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand (x4), each with BN; residual add then ReLU."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut = shortcut(in_planes, out_planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """Stem conv, ``layer1``..``layer4``, global average pool, ``linear`` (kuangliu's names)."""

    def __init__(
        self,
        block: type[nn.Module],  # BasicBlock, Bottleneck, senet.PreActSEBlock: has .expansion
        num_blocks: tuple[int, int, int, int],
        in_channels: int,
        num_classes: int,
        width: float,
    ) -> None:
        super().__init__()
        planes = [scaled(c, width) for c in (64, 128, 256, 512)]
        self.conv1 = nn.Conv2d(in_channels, planes[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes[0])
        c = planes[0]
        self.layer1, c = make_stage(block, c, planes[0], num_blocks[0], 1, block.expansion)
        self.layer2, c = make_stage(block, c, planes[1], num_blocks[1], 2, block.expansion)
        self.layer3, c = make_stage(block, c, planes[2], num_blocks[2], 2, block.expansion)
        self.layer4, c = make_stage(block, c, planes[3], num_blocks[3], 2, block.expansion)
        self.linear = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)
        return self.linear(out)


@register_model(
    "resnet18", description="CIFAR ResNet-18 (kuangliu; 3x3 stem, no max-pool; 21 layers)"
)
def resnet18(
    *, in_channels: int, image_size: tuple[int, int], num_classes: int, width: float
) -> nn.Module:
    return ResNet(BasicBlock, (2, 2, 2, 2), in_channels, num_classes, width)


@register_model(
    "resnet50", description="CIFAR ResNet-50 (kuangliu; bottlenecks 3-4-6-3; 54 layers)"
)
def resnet50(
    *, in_channels: int, image_size: tuple[int, int], num_classes: int, width: float
) -> nn.Module:
    return ResNet(Bottleneck, (3, 4, 6, 3), in_channels, num_classes, width)
