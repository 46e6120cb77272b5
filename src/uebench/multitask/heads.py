"""Per-task heads on the shared backbone's ``(low, high)`` features.

- :class:`ClassificationHead`: global average pool of ``high`` and one ``linear`` layer
  (N x classes logits), as the single-task classifiers.
- :class:`DenseHead`: a light DeepLabv3+-style decoder (Chen et al., arXiv:1802.02611, without
  ASPP): ``reduce_conv`` (1x1) on ``high``, bilinear upsampling to the size of ``low``,
  concatenation with ``skip_conv`` (1x1) of ``low``, ``fuse_conv`` (3x3), ``out`` (1x1, with
  bias) and bilinear upsampling to the image size: N x channels x H x W (segmentation logits,
  depth in metres, keypoint heat maps). Each conv but ``out`` is followed by BatchNorm and ReLU.

Output sizes are fixed at build time (``torch.fx`` traces constants, no shape arithmetic).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ClassificationHead(nn.Module):
    """``linear(mean over H, W of high)``."""

    def __init__(self, high_channels: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(high_channels, num_classes)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(high, 1), 1))


def _conv_bn(cin: int, cout: int, kernel: int) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    return nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout)


class DenseHead(nn.Module):
    """Per-pixel predictions from ``high`` (upsampled) fused with the ``low`` skip features.

    Args:
        low_channels, high_channels: the backbone's feature channels.
        channels: output channels.
        low_size: spatial size (H, W) of ``low``.
        image_size: spatial size (H, W) of the output.
        mid: decoder width (the skip branch has ``mid // 2`` channels, at least 1).
    """

    def __init__(self, low_channels: int, high_channels: int, channels: int,
                 low_size: tuple[int, int], image_size: tuple[int, int], mid: int) -> None:
        super().__init__()
        skip = max(1, mid // 2)
        self.reduce_conv, self.reduce_bn = _conv_bn(high_channels, mid, 1)
        self.skip_conv, self.skip_bn = _conv_bn(low_channels, skip, 1)
        self.fuse_conv, self.fuse_bn = _conv_bn(mid + skip, mid, 3)
        self.out = nn.Conv2d(mid, channels, 1)
        self.low_size = tuple(low_size)
        self.image_size = tuple(image_size)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.reduce_bn(self.reduce_conv(high)))
        h = F.interpolate(h, size=self.low_size, mode="bilinear", align_corners=False)
        s = F.relu(self.skip_bn(self.skip_conv(low)))
        y = self.out(F.relu(self.fuse_bn(self.fuse_conv(torch.cat([h, s], 1)))))
        if self.low_size != self.image_size:
            y = F.interpolate(y, size=self.image_size, mode="bilinear", align_corners=False)
        return y
