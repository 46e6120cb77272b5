"""Directions in parameter space: flat vectors <-> named tensors, and filter-normalised random
directions (Li et al., "Visualizing the Loss Landscape of Neural Nets", NeurIPS 2018,
arXiv 1712.09913, §4).

Filter normalisation rescales a Gaussian direction ``d`` filter by filter to the norm of the
weights: ``d_i <- d_i * ||w_i|| / (||d_i|| + 1e-10)``, where a "filter" is one slice along the
first dimension (a conv output channel, a linear output neuron). It removes the scale invariance
of ReLU networks, so plots of different models are comparable. 1-D tensors (biases, BatchNorm
affine parameters) get a zero direction by default, as ``--xignore biasbn`` in the authors' code
(tomgoldstein/loss-landscape); ``ignore_1d=False`` normalises them as one filter instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from uebench.runtime import derive_seed

_STREAM = 8101  # generator stream of random landscape directions


def flatten(tensors: Mapping[str, torch.Tensor], names: Sequence[str]) -> torch.Tensor:
    """Concatenate ``tensors[name]`` (flattened) in ``names`` order into one (D,) vector."""
    return torch.cat([tensors[n].detach().reshape(-1) for n in names])


def unflatten(vector: torch.Tensor, names: Sequence[str],
              shapes: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
    """Split a (D,) vector back into named tensors of the given shapes (views, no copy)."""
    out, offset = {}, 0
    for name, shape in zip(names, shapes):
        numel = 1
        for s in shape:
            numel *= int(s)
        out[name] = vector[offset:offset + numel].view(*shape)
        offset += numel
    if offset != vector.numel():
        raise ValueError(f"vector has {vector.numel()} values, the shapes need {offset}")
    return out


def filter_normalized(weights: Mapping[str, torch.Tensor], generator: torch.Generator, *,
                      ignore_1d: bool = True) -> dict[str, torch.Tensor]:
    """One filter-normalised Gaussian direction shaped like ``weights`` (Li et al., 2018).

    Args:
        weights: the parameters the direction perturbs (usually the final model's).
        generator: CPU generator the Gaussian draws come from (deterministic given its seed).
        ignore_1d: zero direction for 1-D tensors (biases, BatchNorm) instead of normalising them.

    Returns:
        ``{name: direction}`` with each direction's filters of the same norm as the weights'.
    """
    out = {}
    for name, w in weights.items():
        w = w.detach()
        d = torch.randn(w.shape, generator=generator, dtype=torch.float64)
        if w.dim() <= 1:
            if ignore_1d:
                d = torch.zeros_like(d)
            else:
                d = d * (w.double().norm() / (d.norm() + 1e-10))
        else:
            w_norm = w.double().reshape(w.shape[0], -1).norm(dim=1)
            d_norm = d.reshape(w.shape[0], -1).norm(dim=1)
            scale = w_norm / (d_norm + 1e-10)
            d = d * scale.view(-1, *([1] * (w.dim() - 1)))
        out[name] = d.to(w.dtype)
    return out


def random_directions(weights: Mapping[str, torch.Tensor], count: int, *, seed: int,
                      ignore_1d: bool = True) -> list[dict[str, torch.Tensor]]:
    """``count`` independent filter-normalised directions, drawn from a generator derived from
    ``seed`` (the same seed gives the same directions for models of the same shapes)."""
    gen = torch.Generator().manual_seed(derive_seed(seed, _STREAM))
    return [filter_normalized(weights, gen, ignore_1d=ignore_1d) for _ in range(count)]
