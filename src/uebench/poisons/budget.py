"""Perturbation budgets: norms, projections and measurement (shared by attacks, the poison store,
imports and the SAL engines' weight-space balls).

All functions work on a batch: dimension 0 indexes samples (or, for weight perturbations, stacked
clones), and every norm is taken per sample over the remaining dimensions. Values are in [0, 1]
image units unless a caller says otherwise.
"""

from __future__ import annotations

import torch

NORMS = ("linf", "l2", "l0", None)


def clamp_to_image(x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """Shrink ``delta`` so that ``x + delta`` lies in [0, 1]."""
    return (x + delta).clamp_(0.0, 1.0) - x


def project_linf(delta: torch.Tensor, eps: float) -> torch.Tensor:
    return delta.clamp(-eps, eps)


def project_l2(delta: torch.Tensor, eps: float | torch.Tensor) -> torch.Tensor:
    """Per-sample projection onto the L2 ball of radius ``eps`` (a number or a 0-d tensor).

    The one L2 projection of the code base: attacks' budgets, the store's quantisation and the
    SAL engines' relative weight balls (``eps = ε‖θ_l‖``) all use it.
    """
    flat = delta.flatten(1)
    norms = flat.norm(dim=1).clamp_min(1e-12)
    factor = (eps / norms).clamp(max=1.0)
    return (flat * factor[:, None]).view_as(delta)


def enforce_budget(
    x: torch.Tensor, delta: torch.Tensor, norm: str | None, eps: float | None
) -> torch.Tensor:
    """Project onto the declared budget, then clamp to the image range (only shrinks norms)."""
    if not torch.isfinite(delta).all():
        raise FloatingPointError("attack produced NaN/Inf perturbations")
    if norm == "linf" and eps is not None:
        delta = project_linf(delta, eps)
    elif norm == "l2" and eps is not None:
        delta = project_l2(delta, eps)
    return clamp_to_image(x, delta)


def measure(delta: torch.Tensor) -> dict[str, float]:
    """Largest per-sample linf, l2 and l0 (changed pixel positions) norms, in [0, 1] units."""
    flat = delta.flatten(1).double()
    l0 = (delta.abs().amax(dim=1) > 0).flatten(1).sum(1)  # a pixel counts once across channels
    return {
        "linf_max": float(flat.abs().amax()) if flat.numel() else 0.0,
        "l2_max": float(flat.norm(dim=1).max()) if flat.numel() else 0.0,
        "l0_max": float(l0.max()) if l0.numel() else 0.0,
    }
