"""Model contract and registry.

Every model is built by ``get_model(name, in_channels=..., image_size=..., num_classes=...,
width=..., mean=..., std=...)``; input normalization lives inside the model (a
:class:`Normalize` module first), so every model takes raw images in [0, 1].

The paper counts "layers" as every ``nn.Conv2d`` and ``nn.Linear`` weight
(:func:`layer_names`); CIFAR ResNet-18 has 21.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from uebench.registry import Registry

ModelFn = Callable[..., nn.Module]
MODELS: Registry[ModelFn] = Registry("model")


def register_model(name: str, *, description: str) -> Callable[[ModelFn], ModelFn]:
    """Register ``fn(*, in_channels, image_size, num_classes, width) -> nn.Module``.

    ``image_size`` reaches the function as an ``(H, W)`` tuple.
    """
    return MODELS.register(name, description=description)


class Normalize(nn.Module):
    """Per-channel (x - mean) / std, with mean and std as buffers (saved in checkpoints)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer(
            "mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1)
        )
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    """``Normalize`` followed by the network; ``net`` holds every learnable layer."""

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))


def get_model(
    name: str,
    *,
    in_channels: int = 3,
    image_size: int | tuple[int, int] = 32,
    num_classes: int = 10,
    width: float = 1.0,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> nn.Module:
    """Build a registered model wrapped with input normalization.

    Args:
        name: registry key (``uebench models`` lists them).
        in_channels: image channels (1 for MNIST-like, 3 for CIFAR).
        image_size: input side in pixels, or ``(H, W)``.
        num_classes: output logits.
        width: channel-width multiplier (1.0 = the published width).
        mean, std: per-channel normalization (defaults 0.5 / 0.5 for every channel).
    """
    fn = MODELS.get(name)
    hw = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    net = fn(in_channels=in_channels, image_size=hw, num_classes=num_classes, width=width)
    mean = tuple(mean) if mean is not None else (0.5,) * in_channels
    std = tuple(std) if std is not None else (0.5,) * in_channels
    if len(mean) != in_channels or len(std) != in_channels:
        raise ValueError(f"mean/std need {in_channels} values, got {len(mean)}/{len(std)}")
    return Classifier(net, mean, std)


def layer_names(model: nn.Module) -> list[str]:
    """Module paths of every Conv2d and Linear (the paper's "layers"), in definition order."""
    return [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def scaled(channels: int, width: float) -> int:
    """Channels scaled by a width multiplier (at least 1)."""
    return max(1, int(round(channels * width)))
