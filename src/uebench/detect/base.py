"""Detector contract and registry (``uebench detect``, docs/detect.md).

A detector is one function in its own file::

    @register_detector("simple", needs_reference=True, sample_scores=True, floor=0.05,
                       statistic="held-out accuracy of the better simple network",
                       cost="4 small fits (2 networks x 2 folds), no GPU",
                       description="...", paper="Zhu et al., AAAI 2024, arXiv 2312.08898")
    def simple(images: ImageSet, *, rt: Runtime, <options>) -> Measurement

- ``images``: the candidate training set (uint8 N x C x H x W, int64 labels).
- ``rt``: device, seed and progress; every random draw comes from ``rt.generator(...)`` streams or
  seeds derived from ``rt.seed``, so a seed gives the same measurement on CPU.
- options are keyword-only with defaults (the settings docs/detect.md describes).
- returns a :class:`Measurement`: the dataset-level statistic, oriented so that *larger* means
  *more like an availability poison*, and, if the detector declares ``sample_scores``, one score
  per image, also larger = more suspicious.

The statistic alone says little: :func:`uebench.detect.api.detect_sets` runs the same detector on
clean reference subsets of the same size and reads the candidate against them (the score is the
difference, the threshold comes from the references' spread and the detector's ``floor``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from uebench.data.base import ImageSet
from uebench.errors import ConfigError
from uebench.registry import Registry
from uebench.runtime import Runtime


@dataclass(frozen=True)
class Measurement:
    """What one detector measured on one image set.

    ``value``: the dataset-level statistic (finite; larger = more poison-like). ``samples``:
    float64 (N,) scores in the order of the images (larger = more suspicious), or ``None``.
    ``details``: further numbers worth reporting (e.g. each network's accuracy).
    """

    value: float
    samples: np.ndarray | None = None
    details: dict[str, float] = field(default_factory=dict)


DetectorFn = Callable[..., Measurement]
DETECTORS: Registry[DetectorFn] = Registry("detector")

# what every detector declares at registration (tests check each is present and typed)
META_FIELDS: dict[str, type | tuple[type, ...]] = {
    "needs_reference": bool, "sample_scores": bool, "floor": float, "statistic": str,
    "cost": str, "description": str, "paper": str, "defaults": dict,
}


def register_detector(
    name: str, *, needs_reference: bool, sample_scores: bool, floor: float, statistic: str,
    cost: str, description: str, paper: str = "",
) -> Callable[[DetectorFn], DetectorFn]:
    """Register ``fn(images, *, rt, **options) -> Measurement``.

    Args:
        name: registry key (``uebench detect --detectors NAME``).
        needs_reference: the statistic is read against clean reference subsets (score = value -
            reference); ``False``: the value is the score and ``floor`` an absolute threshold.
        sample_scores: whether :attr:`Measurement.samples` is filled.
        floor: the smallest threshold on the score, in the statistic's units (docs/detect.md,
            "The threshold").
        statistic: one line saying what ``value`` is.
        cost: one line saying what it costs (fits, passes, no GPU needed ...).
        description: one line for listings.
        paper: where the idea comes from (authors, venue, arXiv id).
    """
    if not (isinstance(floor, float) and np.isfinite(floor) and floor >= 0):
        raise ValueError(f"detector {name}: floor must be a finite float >= 0, got {floor!r}")

    def deco(fn: DetectorFn) -> DetectorFn:
        sig = inspect.signature(fn)
        defaults = {k: p.default for k, p in sig.parameters.items()
                    if p.kind is inspect.Parameter.KEYWORD_ONLY and k != "rt"
                    and p.default is not inspect.Parameter.empty}
        DETECTORS.register(
            name, needs_reference=needs_reference, sample_scores=sample_scores, floor=floor,
            statistic=statistic, cost=cost, description=description, paper=paper,
            defaults=defaults)(fn)
        return fn

    return deco


def check_options(name: str, options: Mapping[str, Any]) -> None:
    """Refuse options a detector does not take, before any work."""
    known = DETECTORS.meta(name)["defaults"]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(f"detector {name} has no option(s) {unknown}; its options are "
                          f"{sorted(known) or 'none'}")


def run_detector(name: str, images: ImageSet, *, rt: Runtime,
                 options: Mapping[str, Any] | None = None) -> Measurement:
    """One detector on one image set, with torch's global RNG left as it was (the detectors seed
    it for weight init; the caller's draws must not depend on whether a detection ran)."""
    check_options(name, options or {})
    devices = [rt.device] if rt.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        out = DETECTORS.get(name)(images, rt=rt, **dict(options or {}))
    if not np.isfinite(out.value):
        raise ValueError(f"detector {name} gave a non-finite statistic {out.value}")
    if out.samples is not None and out.samples.shape != (len(images),):
        raise ValueError(f"detector {name} gave {out.samples.shape} sample scores for "
                         f"{len(images)} images")
    return out


# ----------------------------------------------------------------------------- shared helpers


def halves(y: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded class-stratified random split of ``range(len(y))`` into two halves (sorted index
    tensors; within a class the odd one out goes to the first half)."""
    first, second = [], []
    for cls in torch.unique(y).tolist():
        idx = torch.nonzero(y == cls).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        cut = (len(idx) + 1) // 2
        first.append(idx[:cut])
        second.append(idx[cut:])
    return torch.cat(first).sort().values, torch.cat(second).sort().values


def cross_fit(
    y: torch.Tensor, gen: torch.Generator,
    fit_predict: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor],
) -> torch.Tensor:
    """Two-fold cross-fitting: ``fit_predict(train_idx, test_idx, fold)`` returns a per-row
    result for ``test_idx`` (shape (len(test_idx), ...)); every image gets the result of the fold
    it was held out of. Returns the results in image order."""
    a, b = halves(y, gen)
    parts = [(a, b), (b, a)]
    out: torch.Tensor | None = None
    for fold, (train_idx, test_idx) in enumerate(parts):
        got = fit_predict(train_idx, test_idx, fold)
        if out is None:
            out = torch.empty((len(y), *got.shape[1:]), dtype=got.dtype)
        out[test_idx] = got
    assert out is not None
    return out



@torch.no_grad()
def per_image(model: torch.nn.Module, images: ImageSet, device: torch.device,
              fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
              chunk: int = 1024) -> torch.Tensor:
    """``fn(logits, labels)`` for every image, in chunks (eval mode; images in [0, 1]); on CPU."""
    model.eval()
    out = []
    for start in range(0, len(images), chunk):
        xb = images.x[start:start + chunk].to(device).float().div_(255.0)
        yb = images.y[start:start + chunk].to(device)
        out.append(fn(model(xb).float(), yb).cpu())
    return torch.cat(out)
