"""Integer pixel units for stored poisons: quantization that keeps the declared budget, and the
norms of a stored (int16) perturbation. Everything runs in chunks of samples, so a poison of the
size of ImageNet-100 never needs a float64 copy of the whole set.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from uebench.poisons.budget import measure, project_l2

CHUNK = 1024  # samples per chunk
TOLERANCE = 1e-6  # slack when comparing measured norms with the declared radius
_NORM_KEY = {"linf": "linf_max", "l2": "l2_max", "l0": "l0_max"}


def chunks(n: int, size: int = CHUNK) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def round_to_budget(delta: torch.Tensor, norm: str | None, eps: float | None) -> torch.Tensor:
    """``255 * delta`` rounded to integers (float64) without leaving the budget.

    - linf: ``clamp(round(255 d), +-floor(255 eps + 1e-6))``;
    - l2: round; a sample whose rounded norm exceeds ``eps`` is truncated toward zero instead
      (``|trunc(v)| <= |v|``, so its norm cannot exceed the float delta's), after shrinking it
      onto the ball if the float delta itself was outside;
    - l0 or no norm: round.

    Rounding is half up (``floor(v + 0.5)``), as APBench's PNG export.
    """
    scaled = delta.detach().double().cpu() * 255.0
    q = torch.floor(scaled + 0.5)
    if norm == "linf" and eps is not None:
        cap = math.floor(255.0 * eps + 1e-6)
        q = q.clamp(-cap, cap)
    elif norm == "l2" and eps is not None:
        over = (q / 255.0).flatten(1).norm(dim=1) > eps
        if over.any():
            q[over] = (project_l2(scaled[over] / 255.0, eps) * 255.0).trunc()
    return q


def clamp_range(q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """int16 delta with ``0 <= x + delta <= 255`` (entries only move toward zero)."""
    xi = x.to(torch.int32)
    return torch.maximum(torch.minimum(q.to(torch.int32), 255 - xi), -xi).to(torch.int16)


def quantize(
    delta: torch.Tensor, x: torch.Tensor, norm: str | None, eps: float | None
) -> tuple[torch.Tensor, int]:
    """Integer pixel-unit delta that respects the budget and the pixel range.

    Args:
        delta: float perturbation in [0, 1] units, N x C x H x W (any device).
        x: the clean uint8 images it belongs to (CPU).
        norm, eps: the declared budget (``eps`` in [0, 1] units; None = unbounded).

    Returns:
        ``(q, clamped)``: ``q`` int16 on the CPU (:func:`round_to_budget`, then
        :func:`clamp_range`) and the number of entries the range clamp changed.
    """
    out = torch.empty(tuple(delta.shape), dtype=torch.int16)
    clamped = 0
    for part in chunks(delta.shape[0]):
        rounded = round_to_budget(delta[part], norm, eps)
        out[part] = clamp_range(rounded, x[part])
        clamped += int((rounded != out[part].double()).sum())
    return out, clamped


def measure_pixels(delta: torch.Tensor, scale: float = 255.0) -> dict[str, float]:
    """:func:`~uebench.poisons.budget.measure` of ``delta / scale`` by chunks (255: pixels)."""
    result = {"linf_max": 0.0, "l2_max": 0.0, "l0_max": 0.0}
    for part in chunks(delta.shape[0]):
        for key, value in measure(delta[part].double() / scale).items():
            result[key] = max(result[key], value)
    return result


def range_extremes(x: torch.Tensor, delta: torch.Tensor) -> tuple[int, int]:
    """Smallest and largest value of ``x + delta`` (uint8 images, integer delta)."""
    low, high = 0, 255
    for part in chunks(x.shape[0]):
        total = x[part].to(torch.int32) + delta[part].to(torch.int32)
        low, high = min(low, int(total.min())), max(high, int(total.max()))
    return low, high


def budget_violation(measured: dict[str, float], norm: str | None, eps: float | None) -> str | None:
    """A description of the violation if ``measured`` exceeds the budget, else None."""
    if norm is None or eps is None:
        return None
    value = measured[_NORM_KEY[norm]]
    if value > eps + TOLERANCE:
        return f"measured {norm} {value:.6g} > declared eps {eps:.6g}"
    return None
