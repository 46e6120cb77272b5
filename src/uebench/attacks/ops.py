"""OPS: the one-pixel shortcut (Wu et al., ICLR 2023, arXiv 2205.12141).

Each class gets one (pixel position, colour) pair, and that pixel is set to that colour in every
image of the class. Colours are the corners of the colour cube, {0, 1}^C (8 for RGB, 2 for
grayscale). The pair is chosen so the shortcut stands out from the class's natural pixel values:

    score(k, p, c) = mean(|c - x[k, :, p]|) / (std(|c - x[k, :, p]|) + 1e-8)

where mean and standard deviation (population, ddof 0) run jointly over the class's images and
the channels, exactly as the authors' ``perturb.py`` (fe440c1) computes them. Classes pick in
order 0, 1, ...; each takes its best pair not already taken by an earlier class (a later class
may reuse the position with a different colour, as in the original).

Unlike the original (a Python triple loop, 10 classes only) the scores of all classes, positions
and colours come from per-class first and second moments in one vectorised pass, so any number
of classes works as long as there are at least ``num_classes`` (position, colour) pairs.

Distance measure: l0 = 1 pixel (no magnitude bound; the registry declares norm ``l0`` and no
eps parameter). Input ``x`` float in [0, 1], N x C x H x W; returns ``delta = x_poison - x`` of
the same shape. Deterministic: there is no randomness.
"""

from __future__ import annotations

from pathlib import Path

import torch

from uebench.attacks.base import register_attack
from uebench.errors import UebenchError
from uebench.runtime import Runtime


def corner_colours(channels: int, *, device: torch.device | None = None) -> torch.Tensor:
    """All 2^C corners of the colour cube as an (2^C, C) float tensor; bit order as the original
    (first channel = most significant bit: 0 -> (0,0,0), 1 -> (0,0,1), ..., 7 -> (1,1,1))."""
    codes = torch.arange(2**channels, device=device)
    shifts = torch.arange(channels - 1, -1, -1, device=device)
    return ((codes[:, None] >> shifts[None, :]) & 1).double()


def ops_scores(x: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Scores of every (class, colour, position): a (K, 2^C, H*W) float64 tensor.

    With v = |c - x| and c in {0, 1}, v is x (c = 0) or 1 - x (c = 1), so the mean and the
    second moment of v follow from the per-class sums of x and x^2 per channel and position.
    Classes without images get score -inf (they never pick).
    """
    channels = x.shape[1]
    s1 = torch.zeros((num_classes, channels, x[0].numel() // channels), dtype=torch.float64,
                     device=x.device)
    s2 = torch.zeros_like(s1)
    for start in range(0, x.shape[0], 4096):  # chunks: no float64 copy of the whole set
        flat = x[start:start + 4096].double().flatten(2)  # n x C x P
        s1.index_add_(0, y[start:start + 4096], flat)
        s2.index_add_(0, y[start:start + 4096], flat * flat)
    counts = torch.bincount(y, minlength=num_classes).double().clamp_min(1)[:, None, None]
    m1, m2 = s1 / counts, s2 / counts  # K x C x P: E[x], E[x^2]
    colours = corner_colours(channels, device=x.device)[None, :, :, None]  # 1 x M x C x 1
    # E[v] and E[v^2] per channel for each colour: c=0 -> (m1, m2); c=1 -> (1-m1, 1-2m1+m2)
    mean_c = torch.where(colours > 0, 1 - m1[:, None], m1[:, None])  # K x M x C x P
    sq_c = torch.where(colours > 0, 1 - 2 * m1[:, None] + m2[:, None], m2[:, None])
    mean = mean_c.mean(dim=2)  # joint over images and channels
    var = (sq_c.mean(dim=2) - mean * mean).clamp_min(0.0)
    scores = mean / (var.sqrt() + 1e-8)
    present = torch.bincount(y, minlength=num_classes) > 0
    return scores.masked_fill(~present[:, None, None], float("-inf"))


def ops_search(
    x: torch.Tensor, y: torch.Tensor, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy per-class choice of (position, colour index).

    Returns:
        ``positions`` (K,) flat pixel indices and ``colours`` (K,) colour indices (-1 for classes
        without images).
    """
    scores = ops_scores(x, y, num_classes)
    k, m, p = scores.shape
    if m * p < num_classes:
        raise UebenchError(
            f"ops: {num_classes} classes need as many distinct (pixel, colour) pairs, but "
            f"{p} pixels x {m} colours = {m * p}; use larger images"
        )
    flat = scores.reshape(k, m * p)
    taken = torch.zeros(m * p, dtype=torch.bool, device=x.device)
    picks = torch.full((k,), -1, dtype=torch.long, device=x.device)
    for cls in range(k):  # sequential by design: earlier classes have priority
        if torch.isneginf(flat[cls]).all():
            continue
        best = int(flat[cls].masked_fill(taken, float("-inf")).argmax())
        picks[cls] = best
        taken[best] = True
    colours = torch.where(picks >= 0, picks // p, -1)
    positions = torch.where(picks >= 0, picks % p, -1)
    return positions, colours


@register_attack(
    "ops",
    norm="l0",
    eps_param=None,
    presets={"apbench": {}},  # APBench runs the same search
    description="one-pixel shortcut: one (pixel, corner colour) per class, set in all its images",
    paper="Wu et al., ICLR 2023, arXiv 2205.12141",
)
def ops(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    num_classes: int,
    rt: Runtime,
    workdir: Path | None = None,
) -> torch.Tensor:
    """One-pixel shortcut.

    Args:
        x: clean images, float in [0, 1], N x C x H x W.
        y: int64 labels (N,).
        num_classes: number of classes K (needs K <= H*W*2^C).
        rt: runtime (unused: the search is deterministic).
        workdir: unused.

    Returns:
        ``delta`` shaped like ``x``: nonzero only at each class's pixel, ``x + delta`` in [0, 1].
    """
    positions, colour_idx = ops_search(x, y, num_classes)
    palette = corner_colours(x.shape[1], device=x.device).to(x.dtype)  # M x C
    pos, col = positions[y], colour_idx[y]
    rows = torch.arange(x.shape[0], device=x.device)
    flat = x.flatten(2)  # N x C x P (a view)
    delta = torch.zeros_like(flat)
    delta[rows, :, pos] = palette[col] - flat[rows, :, pos]
    return delta.view_as(x)
