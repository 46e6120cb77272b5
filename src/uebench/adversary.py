"""One projected-gradient implementation for everything that perturbs inputs.

Used by the surrogate attacks (EM, REM, TAP, HYPO through :mod:`uebench.attacks.surrogate`) and by
adversarial training (:mod:`uebench.defenses.adversarial`), so a fix reaches both.

- :func:`pgd`: projected gradient *descent* on a per-sample objective over ``delta`` in an
  ``linf`` or ``l2`` ball (sign steps for linf, L2-normalised steps for l2), projected onto the
  ball and clamped so that ``x + delta`` stays in [0, 1] after every step (Madry et al., "Towards
  Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018, arXiv 1706.06083).
- :func:`uniform_start`, :func:`random_start`: random starting points.
- :func:`project`: the ball projection by norm name (the projections themselves live in
  :mod:`uebench.poisons.budget`, shared with the poison store).

Images are float in [0, 1], N x C x H x W. This module imports nothing from ``uebench.attacks``
or ``uebench.defenses`` (both import it), so it can be imported first from either side.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from uebench.poisons.budget import clamp_to_image, project_l2, project_linf
from uebench.runtime import autocast

Objective = Callable[[torch.Tensor], torch.Tensor]  # logits -> per-sample loss to *minimise*
NORMS = ("linf", "l2")


def _per_sample_l2(t: torch.Tensor) -> torch.Tensor:
    """L2 norm of each sample, shaped to broadcast against ``t`` (N x 1 x 1 x ...)."""
    return t.flatten(1).norm(dim=1).view(-1, *[1] * (t.dim() - 1))


def project(delta: torch.Tensor, norm: str, eps: float) -> torch.Tensor:
    """Project each sample of ``delta`` onto the ``norm`` ball of radius ``eps``."""
    if norm == "linf":
        return project_linf(delta, eps)
    if norm == "l2":
        return project_l2(delta, eps)
    raise ValueError(f"PGD supports {NORMS}, not {norm!r}")


def uniform_start(x: torch.Tensor, eps: float, gen: torch.Generator) -> torch.Tensor:
    """uniform(-eps, eps) noise like ``x`` (drawn on CPU), clamped so ``x + delta`` is in [0, 1]."""
    noise = (torch.rand(x.shape, generator=gen) * 2 - 1) * eps
    return clamp_to_image(x, noise.to(x.device))


def random_start(x: torch.Tensor, norm: str, scale: float, gen: torch.Generator) -> torch.Tensor:
    """Madry-style random start as APBench's ``MadrysLoss`` draws it (madrys.py, 9a6fb91).

    linf: ``scale * N(0, 1)`` per pixel; l2: a uniformly random direction of L2 norm ``scale``.
    Drawn with ``gen`` on ``gen``'s device (pass a generator on ``x.device`` to avoid copies);
    :func:`pgd` projects it onto the ball and the image range before its first step.
    """
    noise = torch.randn(x.shape, generator=gen, device=gen.device, dtype=x.dtype)
    if norm == "l2":
        noise = noise / (_per_sample_l2(noise) + 1e-10)
    elif norm != "linf":
        raise ValueError(f"PGD supports {NORMS}, not {norm!r}")
    return scale * noise


def pgd(
    model: nn.Module, x: torch.Tensor, delta: torch.Tensor, objective: Objective, *, eps: float,
    step_size: float, steps: int, norm: str = "linf",
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None, precision: str = "fp32",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimise ``objective(model(transform(x + delta)))`` over ``delta`` in the eps-ball.

    Each step moves ``delta`` by ``step_size`` against the gradient's sign (linf) or its
    L2-normalised direction (l2), then projects onto the ball and clamps ``x + delta`` to [0, 1].
    To maximise a loss, pass its negative. The model is used as is (callers set eval mode).
    Only input gradients are computed (``autograd.grad`` w.r.t. ``delta``): no weight gradients.

    Returns:
        ``(delta, loss)``: the final ``delta`` and the per-sample objective of the last step's
        forward pass (before its update; TAP ranks restarts by it).
    """
    delta = clamp_to_image(x, project(delta.detach(), norm, eps))
    loss = None
    for _ in range(steps):
        d = delta.detach().requires_grad_(True)
        inp = x + d if transform is None else transform(x + d)
        with autocast(x.device, precision):
            logits = model(inp)
        loss = objective(logits.float())
        (grad,) = torch.autograd.grad(loss.sum(), d)
        with torch.no_grad():
            if norm == "linf":
                step = grad.sign()
            else:
                step = grad / (_per_sample_l2(grad) + 1e-10)
            delta = clamp_to_image(x, project(d - step_size * step, norm, eps))
    if loss is None:
        with torch.no_grad(), autocast(x.device, precision):
            loss = objective(model(x + delta).float())
    return delta.detach(), loss.detach()
