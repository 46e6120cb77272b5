"""Scoring perturbations found by a search: probe/held-out splits and the full-set estimate.

The fast engine (:mod:`.fast`) searches on a probe subset of the SAL data and reports the
training-loss change of the perturbation it found (SAL, Ye et al., ICLR 2025, arXiv:2509.08058,
Eq. 3, is defined on the whole training set D). Scoring on the probe alone is biased: the
perturbation was chosen on those images, so their loss change overstates its effect on D (and
the probe's own maximum is not D's). The estimate used instead is stratified: the full-set mean
loss of a perturbation is (P·L_probe + (N − P)·L_rest)/N, with L_probe computed exactly (those are
real images of D at that perturbation) and L_rest estimated on a seeded random sample of the
images outside the probe. It is unbiased for the full-set value of the perturbation found, which
is itself a lower bound of the maximum (a feasible point).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from uebench.errors import ConfigError
from uebench.learnability.compat import result_from_extremes
from uebench.learnability.suffix import SuffixPlan
from uebench.learnability.task import SALResult, SALTask, measuring

Losses = dict[str, torch.Tensor]  # layer -> (2,) float64 mean losses of (Δ⁺, Δ⁻)


def _count(size: int | str | None, n: int, name: str) -> int:
    if size is None or size == "all":
        return n
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"{name} must be an int >= 1, 'all' or None; got {size!r}")
    return min(size, n)


def split_probe(n: int, probe_size: int | str | None, eval_size: int | str | None,
                gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None, str]:
    """Seeded (probe indices, held-out indices or None, how the result is scored).

    ``eval_size``: ``None`` = score on the probe (``"probe"``: biased, see the module docstring);
    an int = that many images held out from the probe, drawn from the rest (``"held_out"``;
    fewer if fewer remain); ``"all"`` = every image outside the probe (``"all"``: the exact
    full-set value). With a probe of every image nothing is held out (``"probe"`` = the full set).
    """
    probe = _count(probe_size, n, "probe_size")
    if probe == n:  # keep the natural order: identical to a probe of every image
        index = torch.arange(n)
    else:
        index = torch.randperm(n, generator=gen)
    chosen = index[:probe].sort().values
    if eval_size is None or probe == n:
        return chosen, None, "probe"
    held = index[probe:] if eval_size == "all" else index[probe: probe + _count(
        eval_size, n, "eval_size")]
    return chosen, held.sort().values, "all" if held.numel() == n - probe else "held_out"


@torch.no_grad()
def score_losses(plan: SuffixPlan, task: SALTask, x: torch.Tensor, y: torch.Tensor,
                 deltas: dict[str, torch.Tensor], chunk_size: int) -> tuple[Losses, float]:
    """Mean losses of every layer's stacked perturbations (2 x weight) and the clean mean loss
    of ``(x, y)``, in eval mode, in chunks of ``chunk_size`` images."""
    device = task.rt.device
    sums = {name: torch.zeros(2, dtype=torch.float64, device=device) for name in deltas}
    clean = torch.zeros((), dtype=torch.float64, device=device)
    for start in range(0, int(x.shape[0]), chunk_size):
        xc = task.images(x[start:start + chunk_size])
        yc = y[start:start + chunk_size].to(device)
        with task.autocast():
            logits, cache = plan.capture(xc)
            clean += task.losses(logits[None], yc, "sum")[0].double()
            for name, stack in deltas.items():
                sums[name] += task.losses(plan.batched_suffix(name, stack, cache), yc,
                                           "sum").double()
    n = int(x.shape[0])
    return {k: v / n for k, v in sums.items()}, float(clean) / n


def stratified(parts: Sequence[tuple[Losses, float, int]]) -> tuple[Losses, float]:
    """Image-weighted mean of ``(losses, clean, weight)`` parts: the full-set estimate when the
    parts are disjoint strata (probe: exact, weight P; held-out sample: weight N − P)."""
    total = float(sum(w for _, _, w in parts))
    losses = {k: sum(part[k] * (w / total) for part, _, w in parts) for k in parts[0][0]}
    return losses, sum(clean * (w / total) for _, clean, w in parts)


def sal_from_losses(losses: Losses, origin: float, engine: str, start: float) -> SALResult:
    """SAL per layer from the losses of (Δ⁺, Δ⁻); like compat's max/min losses, which start at
    the origin, both one-sided parts are >= 0. ``start``: ``time.perf_counter()`` at the start."""
    hi = [max(float(pair[0]), origin) for pair in losses.values()]
    lo = [min(float(pair[1]), origin) for pair in losses.values()]
    return result_from_extremes(list(losses), hi, lo, origin, engine, time.perf_counter() - start)


def rescore(task: SALTask, deltas: dict[str, torch.Tensor], *,
            chunk_size: int = 512) -> SALResult:
    """SAL of given perturbations (``{layer: (Δ⁺, Δ⁻)}``, e.g. a fast result's
    ``details["deltas"]``) on every image of ``task``; ``details`` keeps the raw ``losses`` and
    ``clean`` loss (for :func:`stratified`). Benchmarks use it to measure the bias of scoring."""
    start = time.perf_counter()
    with measuring(task.model, task.rt.device, task.dtype) as model:
        plan = SuffixPlan(model, list(deltas))
        moved = {k: v.to(task.rt.device, plan.weight(k).dtype) for k, v in deltas.items()}
        losses, clean = score_losses(plan, task, task.x, task.y, moved, chunk_size)
    res = sal_from_losses(losses, task.resolve_origin(clean), "rescore", start)
    res.details = {"losses": {k: v.cpu() for k, v in losses.items()}, "clean": clean}
    return res
