"""Random noise: the sample-wise uniform baseline and Delusive P5 (class-wise random noise).

Sample-wise: every image gets its own draw of uniform(-eps, eps) per pixel and channel (the EM
repository's ``--attack_type random``; Huang et al., ICLR 2021, arXiv 2101.04898). It barely
hurts learning: independent noise carries no label information.

Class-wise (``classwise=True``): one uniform(-eps, eps) draw per class, added to every image of
the class; this is P5 of the Delusive Adversary (Tao et al., NeurIPS 2021, arXiv 2102.04716),
a strong shortcut because the noise pattern predicts the label.

Distance measure: linf, ``eps`` = 8/255. Input ``x`` float in [0, 1], N x C x H x W; returns
``delta`` of the same shape with ``x + delta`` in [0, 1]. Deterministic given ``rt.seed``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from uebench.attacks.base import clamp_to_image, register_attack
from uebench.runtime import Runtime

_STREAM = 7001  # generator stream of this attack (distinct from other components' streams)


@register_attack(
    "random",
    norm="linf",
    description="uniform(-eps, eps) noise; classwise=True gives Delusive P5 (one draw per class)",
    paper="Huang et al., ICLR 2021, arXiv 2101.04898 (baseline); Tao et al. P5, arXiv 2102.04716",
)
def random_noise(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    num_classes: int,
    rt: Runtime,
    workdir: Path | None = None,
    eps: float = 8 / 255,
    classwise: bool = False,
) -> torch.Tensor:
    """Uniform noise in the linf ball.

    Args:
        x: clean images, float in [0, 1], N x C x H x W.
        y: int64 labels (N,), in ``[0, num_classes)``.
        num_classes: number of classes (class-wise draws one pattern per class).
        rt: runtime; the draw comes from ``rt.generator(7001)`` on CPU.
        workdir: unused (no state to resume).
        eps: linf radius in [0, 1] units.
        classwise: one shared pattern per class instead of one per image.

    Returns:
        ``delta`` shaped like ``x``.
    """
    gen = rt.generator(_STREAM, int(classwise))
    rows = num_classes if classwise else x.shape[0]
    noise = torch.rand((rows, *x.shape[1:]), generator=gen, dtype=torch.float32)
    noise = (noise * 2.0 - 1.0) * eps
    if classwise:
        noise = noise[y.cpu()]
    return clamp_to_image(x, noise.to(x.device))
