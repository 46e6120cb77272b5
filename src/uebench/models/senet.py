"""SENet-18: CIFAR pre-activation ResNet-18 with squeeze-and-excitation (kuangliu/pytorch-cifar).

Squeeze-and-Excitation: Hu et al., 2018, arXiv:1709.01507; pre-activation blocks: He et al., 2016,
arXiv:1603.05027. (The paper's reference list cites an unrelated "SENet" for sea-land segmentation;
the model it trains is APBench's ``se18``, this one.)

Structure: the :class:`~uebench.models.resnet.ResNet` trunk (3x3 stem conv + BN + ReLU, four stages
with strides 1-2-2-2, global average pooling, Linear head) with two :class:`PreActSEBlock` a
stage. Each block: BN-ReLU, 3x3 conv, BN-ReLU, 3x3 conv, then SE
gating of the residual branch (global average pool, 1x1 conv ``fc1`` to C/16, ReLU, 1x1 conv ``fc2``
back to C, sigmoid), plus the shortcut: the identity on the raw input, or a bare 1x1 conv (no BN) on
the pre-activated input when the shape changes. The SE convs are Conv2d (with bias), so they count
as layers: 37 in all (stem, 16 block convs, 16 SE convs, 3 shortcuts, linear); 11,260,354 parameters
at width 1 with 10 classes.

Input: float N x C x H x W (normalized by the Classifier wrapper); output: N x num_classes logits.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from uebench.models.base import register_model
from uebench.models.resnet import ResNet, shortcut

SE_REDUCTION = 16


class PreActSEBlock(nn.Module):
    """Pre-activation basic block whose residual branch is rescaled channel-wise by an SE gate."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.shortcut = shortcut(in_planes, planes, stride, norm=False)
        # fixed at build time so torch.fx traces one branch (kuangliu: hasattr(self, "shortcut"))
        self.project = len(self.shortcut) > 0
        hidden = max(1, planes // SE_REDUCTION)
        self.fc1 = nn.Conv2d(planes, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, planes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        # the projection sees the pre-activated input, the identity the raw one (as in kuangliu)
        residual = self.shortcut(out) if self.project else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        gate = F.adaptive_avg_pool2d(out, 1)  # squeeze: N x C x 1 x 1
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(gate))))  # excitation
        return out * gate + residual


@register_model("senet18", description="SENet-18 (pre-activation blocks + SE; kuangliu; 37 layers)")
def senet18(
    *, in_channels: int, image_size: tuple[int, int], num_classes: int, width: float
) -> nn.Module:
    return ResNet(PreActSEBlock, (2, 2, 2, 2), in_channels, num_classes, width)
