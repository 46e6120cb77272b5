"""Linear (softmax-regression) model: the paper's toy task (12 -> 10, Section 3.1)."""

from __future__ import annotations

from torch import nn

from uebench.models.base import register_model


@register_model("linear", description="one Linear layer on the flattened input (paper §3.1 toy)")
def linear(
    *, in_channels: int, image_size: tuple[int, int], num_classes: int, width: float
) -> nn.Module:
    h, w = image_size
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * h * w, num_classes))
