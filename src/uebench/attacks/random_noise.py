"""Random noise: the control every poison is read against, and Delusive P5 (class-wise noise).

Sample-wise (the default): every image gets its own independent draw, which carries no label
information, so a model trained on it should learn as it does on clean data. That makes it the
*control* of a learnability measurement: a poison's statistic means something only beside the
statistic of random noise at the same budget (docs/ud.md). One control per budget norm:

- ``norm="linf"``: uniform(-eps, eps) per pixel and channel (the EM repository's
  ``--attack_type random``; Huang et al., ICLR 2021, arXiv 2101.04898); ``eps`` = 8/255;
- ``norm="l2"``: a uniformly random direction (a normalised Gaussian) scaled to ℓ2 norm ``eps``
  per image, the control of an ℓ2 poison such as LSP at its radius;
- ``norm="l0"``: ``eps`` randomly placed pixels per image (the ℓ0 budget is a pixel count) set
  to random extreme colours (each channel 0 or 1), the control of OPS (one pixel, but its
  position and colour follow the class).

``draw`` selects an independent draw of the same noise (a second control for the
control-vs-control false-positive check); ``draw=0`` is the historical draw.

Class-wise (``classwise=True``, ℓ∞ only): one uniform(-eps, eps) draw per class, added to every
image of the class; this is P5 of the Delusive Adversary (Tao et al., NeurIPS 2021, arXiv
2102.04716), a strong shortcut because the noise pattern predicts the label.

Input ``x`` float in [0, 1], N x C x H x W; returns ``delta`` of the same shape with ``x + delta``
in [0, 1]. Deterministic given ``rt.seed``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from uebench.attacks.base import clamp_to_image, register_attack
from uebench.errors import UebenchError
from uebench.runtime import Runtime

_STREAM = 7001  # generator stream of this attack (distinct from other components' streams)
_NORM_STREAM = {"linf": 0, "l2": 1, "l0": 2}


@register_attack(
    "random",
    norm="linf",
    norm_param="norm",
    presets={"l2": {"norm": "l2", "eps": 0.5}, "l0": {"norm": "l0", "eps": 1}},
    description="random noise (the control): uniform linf, random-direction l2 or random "
                "pixels l0; classwise=True gives Delusive P5 (one draw per class)",
    paper="Huang et al., ICLR 2021, arXiv 2101.04898 (baseline); Tao et al. P5, arXiv 2102.04716",
)
def random_noise(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    num_classes: int,
    rt: Runtime,
    workdir: Path | None = None,
    norm: str = "linf",
    eps: float = 8 / 255,
    classwise: bool = False,
    draw: int = 0,
) -> torch.Tensor:
    """Random noise in the ``norm`` ball.

    Args:
        x: clean images, float in [0, 1], N x C x H x W.
        y: int64 labels (N,), in ``[0, num_classes)``.
        num_classes: number of classes (class-wise draws one pattern per class).
        rt: runtime; the draw comes from a CPU generator of stream 7001.
        workdir: unused (no state to resume).
        norm: ``linf`` (uniform), ``l2`` (random direction at radius ``eps``) or ``l0``
            (``eps`` random pixels per image at random extreme colours).
        eps: linf or l2 radius in [0, 1] units; for l0 the number of changed pixels per image.
        classwise: one shared linf pattern per class instead of one per image.
        draw: an independent draw of the same noise (0 = the default draw).

    Returns:
        ``delta`` shaped like ``x``.
    """
    if classwise and norm != "linf":
        raise UebenchError(f"random: classwise=True is the linf P5 noise; norm={norm!r} "
                           "cannot be class-wise (drop classwise or use norm=linf)")
    pixels = int(round(eps)) if norm == "l0" else 0
    if norm == "l0" and (pixels < 1 or abs(eps - pixels) > 1e-9):
        raise UebenchError(f"random: with norm=l0, eps is the number of changed pixels per image "
                           f"(an integer >= 1, e.g. eps=1), got {eps!r}")
    if draw < 0:
        raise UebenchError(f"random: draw must be >= 0, got {draw}")
    # draw 0 of linf keeps the historical stream, so existing poisons stay bit-identical
    offsets = (int(classwise),) if (norm, draw) == ("linf", 0) else (_NORM_STREAM[norm], draw, 1)
    gen = rt.generator(_STREAM, *offsets)
    n = x.shape[0]
    if norm == "linf":
        rows = num_classes if classwise else n
        noise = torch.rand((rows, *x.shape[1:]), generator=gen, dtype=torch.float32)
        noise = (noise * 2.0 - 1.0) * eps
        if classwise:
            noise = noise[y.cpu()]
    elif norm == "l2":
        noise = torch.randn(tuple(x.shape), generator=gen, dtype=torch.float32)
        noise = noise * (eps / noise.flatten(1).norm(dim=1).clamp_min(1e-12)).view(-1, 1, 1, 1)
    else:
        noise = _random_pixels(x.cpu().float(), pixels, gen)
    return clamp_to_image(x, noise.to(x.device))


def _random_pixels(x: torch.Tensor, pixels: int, gen: torch.Generator) -> torch.Tensor:
    """``pixels`` distinct positions per image set to a random colour with channels in {0, 1}."""
    n, c, h, w = x.shape
    if pixels > h * w:
        raise UebenchError(f"random: pixels={pixels} exceeds the {h}x{w} image")
    where = torch.rand((n, h * w), generator=gen).argsort(dim=1)[:, :pixels]
    colour = torch.randint(0, 2, (n, c, pixels), generator=gen).float()
    flat = x.flatten(2).clone()
    flat.scatter_(2, where[:, None, :].expand(n, c, pixels), colour)
    return flat.view_as(x) - x
