"""Tiny CNN for tests: two convs with BN and a residual add, then a linear head."""

from __future__ import annotations

import torch
from torch import nn

from uebench.models.base import register_model, scaled


class TinyNet(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, width: float) -> None:
        super().__init__()
        c = scaled(8, width)
        self.conv1 = nn.Conv2d(in_channels, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))
        h = torch.relu(h + self.bn2(self.conv2(h)))  # residual: tests non-chain suffix logic
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(h, 1), 1))


@register_model("tiny", description="tiny 2-conv residual CNN for tests (~1k params)")
def tiny(
    *, in_channels: int, image_size: tuple[int, int], num_classes: int, width: float
) -> nn.Module:
    return TinyNet(in_channels, num_classes, width)
