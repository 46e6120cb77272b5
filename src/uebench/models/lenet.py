"""LeNet-5 (LeCun et al., 1998), ReLU/max-pool variant for 28x28 or 32x32 inputs."""

from __future__ import annotations

import torch
from torch import nn

from uebench.models.base import register_model, scaled


class LeNet5(nn.Module):
    def __init__(
        self, in_channels: int, image_size: tuple[int, int], num_classes: int, width: float
    ) -> None:
        super().__init__()
        c1, c2 = scaled(6, width), scaled(16, width)
        f1, f2 = scaled(120, width), scaled(84, width)
        # padding 2 on 28x28 reproduces the classic 32x32 geometry
        side_in = image_size[0]
        pad = 2 if side_in <= 28 else 0
        self.conv1 = nn.Conv2d(in_channels, c1, 5, padding=pad)
        self.conv2 = nn.Conv2d(c1, c2, 5)
        side = ((side_in + 2 * pad - 4) // 2 - 4) // 2
        self.fc1 = nn.Linear(c2 * side * side, f1)
        self.fc2 = nn.Linear(f1, f2)
        self.fc3 = nn.Linear(f2, num_classes)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


@register_model("lenet5", description="LeNet-5 (2 conv + 3 linear; 5 layers)")
def lenet5(
    *, in_channels: int, image_size: tuple[int, int], num_classes: int, width: float
) -> nn.Module:
    return LeNet5(in_channels, image_size, num_classes, width)
