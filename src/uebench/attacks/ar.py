"""AR: autoregressive perturbations (Sandoval-Segura et al., NeurIPS 2022, arXiv 2206.03693;
code psandovalsegura/autoregressive-poisoning).

Each class k owns an AR process: per channel a 3 x 3 causal filter ``b`` whose bottom-right tap
is 0 and whose other 8 taps sum to 1. A perturbation is made by drawing a Gaussian start signal
of ``(H + crop) x (W + crop)`` and sweeping it in raster order, setting every pixel (from row 2,
column 2 on) to the filter response over its 3 x 3 causal neighbourhood (no innovation noise).
The top-left ``crop`` rows/columns (which hold the random start) are cut off, the rest is
rescaled to L2 = ``eps`` per image, added and clipped. The matching filter (``b`` with -1 at the
bottom-right) gives exactly 0 on its own process, so a network learns the class from the noise.

Vectorisation: pixel (i, j) depends only on pixels with a smaller ``i + j``, so the sweep runs
over the ``H + W + 2 crop - 5`` anti-diagonals (67 steps at 32 px instead of 1,156 pixel
updates), each batched over all images and channels, with every image using its class's filter.

Coefficient search (seeded, batched; ``autoregressive_param_finder.py``): random sets are drawn
(``randn``, bottom-right zeroed, each channel normalised to sum 1) and generated 3 times at the
reference size 36 x 36, crop 4. A set is rejected if any trial is non-finite, has raw norm
above ``norm_bound`` (50, divergent) or about 0 (all-black). It is accepted for the next class
only if every already accepted process's filter responds to its (unit-L2) pattern with
``sum(ReLU(conv2d(pattern, filter))) >= min_response`` (the original's criterion; default 10 for
at most 10 classes, 3 otherwise, as in the original). Up to ``max_tries`` sets are drawn.

Distance measure: L2, ``eps`` = 1.0 (the README's recommended setting). Input ``x`` float in
[0, 1], N x C x H x W; returns ``delta`` of the same shape. Deterministic given ``rt.seed``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from uebench.attacks.base import clamp_to_image, register_attack
from uebench.errors import UebenchError
from uebench.runtime import Runtime

_STREAM = 7003
_SEARCH_BATCH = 256  # candidate coefficient sets per search round
_CHUNK = 2048  # images per generation chunk (fixed: start signals are drawn per chunk)
_TRIALS = 3
_REF_SIDE, _REF_CROP = 36, 4  # the original's search size (CIFAR)
# offsets of the 8 causal taps relative to the updated pixel, in b's row-major order
_DR = torch.tensor([-2, -2, -2, -1, -1, -1, 0, 0])
_DC = torch.tensor([-2, -1, 0, -2, -1, 0, -2, -1])


def random_coefficients(count: int, channels: int, gen: torch.Generator) -> torch.Tensor:
    """``count`` random AR parameter sets, (count, C, 3, 3): bottom-right 0, taps sum to 1."""
    b = torch.randn((count, channels, 3, 3), generator=gen, dtype=torch.float64)
    b[:, :, 2, 2] = 0.0
    return b / b.sum(dim=(2, 3), keepdim=True)


def ar_sweep(signal: torch.Tensor, coefs: torch.Tensor) -> torch.Tensor:
    """Run the AR recursion over ``signal`` (N x C x S x T) in place and return it.

    ``coefs`` is (N, C, 3, 3) or (1, C, 3, 3). Pixels (i, j) with i, j >= 2 are overwritten with
    ``sum_{r,k} b[r, k] * signal[i - 2 + r, j - 2 + k]`` in raster order, computed one
    anti-diagonal at a time (all its pixels only depend on earlier anti-diagonals).
    """
    rows_n, cols_n = signal.shape[-2:]
    weights = coefs.flatten(2)[:, :, :8].to(signal.dtype)[:, :, None, :]  # N x C x 1 x 8
    dr, dc = _DR.to(signal.device), _DC.to(signal.device)
    for diag in range(4, rows_n + cols_n - 1):
        i = torch.arange(max(2, diag - cols_n + 1), min(rows_n - 1, diag - 2) + 1, device=signal.device)
        j = diag - i
        taps = signal[:, :, i[:, None] + dr, j[:, None] + dc]  # N x C x P x 8
        signal[:, :, i, j] = (taps * weights).sum(-1)
    return signal


def filters_of(coefs: torch.Tensor) -> torch.Tensor:
    """Matching filters (K, C, 3, 3): the coefficients with -1 at the bottom-right tap."""
    filt = coefs.clone()
    filt[:, :, 2, 2] = -1.0
    return filt


def responses(filters: torch.Tensor, patterns: torch.Tensor) -> torch.Tensor:
    """``R[f, g] = sum(ReLU(conv2d(pattern_g, filter_f)))`` for all pairs: (F, G)."""
    out = F.conv2d(patterns.double(), filters.double())  # G x F x h x w
    return F.relu(out).sum(dim=(2, 3)).T


def _candidates(channels: int, gen: torch.Generator, norm_bound: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One search round: (coefficients, unit-L2 patterns) of the candidates that do not diverge."""
    coefs = random_coefficients(_SEARCH_BATCH, channels, gen)
    start = torch.randn((_TRIALS, _SEARCH_BATCH, channels, _REF_SIDE, _REF_SIDE), generator=gen,
                        dtype=torch.float64)
    gens = torch.stack([ar_sweep(start[t], coefs) for t in range(_TRIALS)])
    crops = gens[:, :, :, _REF_CROP:, _REF_CROP:]
    norms = crops.flatten(2).norm(dim=2)  # T x B
    ok = torch.isfinite(crops).flatten(2).all(2).all(0) & (norms <= norm_bound).all(0)
    ok &= (norms > 1e-6).all(0)
    last = crops[-1][ok]
    return coefs[ok], last / norms[-1][ok][:, None, None, None]


def search_coefficients(
    num_classes: int, channels: int, gen: torch.Generator, *,
    min_response: float, max_tries: int, norm_bound: float,
) -> torch.Tensor:
    """Greedy seeded search for ``num_classes`` mutually distinguishable AR processes (K, C, 3, 3)."""
    accepted: list[torch.Tensor] = []
    tried = 0
    while len(accepted) < num_classes and tried < max_tries:
        coefs, patterns = _candidates(channels, gen, norm_bound)
        tried += _SEARCH_BATCH
        if coefs.shape[0] == 0:
            continue
        pool = torch.cat([torch.stack(accepted), coefs]) if accepted else coefs
        resp = responses(filters_of(pool), patterns).numpy()  # (A + B') x B'
        base = len(accepted)
        chosen: list[int] = []
        for g in range(coefs.shape[0]):  # earlier candidates have priority, as in the original
            rows = list(range(base)) + [base + c for c in chosen]
            if not rows or resp[rows, g].min() >= min_response:
                chosen.append(g)
                if base + len(chosen) == num_classes:
                    break
        accepted.extend(coefs[chosen])
    if len(accepted) < num_classes:
        raise UebenchError(
            f"ar: found only {len(accepted)} of {num_classes} AR processes in {tried} tries; "
            "raise max_tries or lower min_response"
        )
    return torch.stack(accepted)


def ar_patterns(coefs: torch.Tensor, labels: torch.Tensor, image_shape: tuple[int, int, int],
                gen: torch.Generator, *, crop: int) -> torch.Tensor:
    """Unscaled AR patterns (N, C, H, W), float64, one fresh start signal per image."""
    c, h, w = image_shape
    start = torch.randn((labels.shape[0], c, h + crop, w + crop), generator=gen, dtype=torch.float64)
    return ar_sweep(start, coefs[labels])[:, :, crop:, crop:]


@register_attack(
    "ar",
    norm="l2",
    description="class-wise autoregressive-process noise, fresh per sample, L2 = eps",
    paper="Sandoval-Segura et al., NeurIPS 2022, arXiv 2206.03693",
)
def ar(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    num_classes: int,
    rt: Runtime,
    workdir: Path | None = None,
    eps: float = 1.0,
    crop: int = 4,
    min_response: float | None = None,
    max_tries: int = 200_000,
    norm_bound: float = 50.0,
) -> torch.Tensor:
    """Autoregressive perturbations.

    Args:
        x: clean images, float in [0, 1], N x C x H x W.
        y: int64 labels (N,).
        num_classes: number of classes (one AR process each).
        rt: runtime; the search uses ``rt.generator(7003, 1)``, chunk ``i`` of the images
            ``rt.generator(7003, 2, i)``.
        workdir: unused.
        eps: L2 radius per image in [0, 1] units.
        crop: rows/columns cut from the top-left of the generated signal (>= 2).
        min_response: acceptance threshold of the search; ``None`` = 10 for <= 10 classes, else 3.
        max_tries: most random coefficient sets drawn by the search.
        norm_bound: divergence bound on the raw pattern's L2 norm.

    Returns:
        ``delta`` shaped like ``x``.
    """
    if crop < 2:
        raise UebenchError(f"ar: crop must be >= 2 (the first 2 rows/columns are the start), got {crop}")
    threshold = min_response if min_response is not None else (10.0 if num_classes <= 10 else 3.0)
    coefs = search_coefficients(num_classes, x.shape[1], rt.generator(_STREAM, 1),
                                min_response=threshold, max_tries=max_tries, norm_bound=norm_bound)
    labels = y.cpu()
    parts = []
    for chunk, start in enumerate(range(0, x.shape[0], _CHUNK)):
        pat = ar_patterns(coefs, labels[start:start + _CHUNK], tuple(x.shape[1:]),
                          rt.generator(_STREAM, 2, chunk), crop=crop)
        norms = pat.flatten(1).norm(dim=1)
        if not (torch.isfinite(norms).all() and (norms > 1e-12).all()):
            bad = sorted(set(labels[start:start + _CHUNK][~(norms > 1e-12)].tolist()))
            raise FloatingPointError(f"ar: processes of classes {bad} diverged or vanished")
        parts.append((pat * (eps / norms)[:, None, None, None]).float())
    delta = torch.cat(parts).to(device=x.device, dtype=x.dtype)
    return clamp_to_image(x, delta)
