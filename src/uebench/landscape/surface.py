"""Loss at many points ``theta = base + sum_j c_j d_j`` of parameter space, batched over points.

A landscape plot needs the loss at every grid point (Li et al., NeurIPS 2018, arXiv 1712.09913:
2,601 evaluations for a 51 x 51 grid). Instead of loading each point's weights into the model
and running the data through it (:func:`evaluate_points_loop`, the reference), the grid points of
a chunk are stacked along a new leading dimension and one ``torch.func.vmap`` of
``functional_call`` evaluates them together, so a conv layer becomes one batched (grouped)
convolution over points. Chunks are sized to a memory budget from the parameter size and a
measured per-sample activation size.

The model is put in eval mode (BatchNorm uses its running statistics, dropout is off), as in the
authors' code; the loss is the mean cross-entropy over the given data, accumulated in float64.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap


def activation_bytes(model: nn.Module, example: torch.Tensor) -> int:
    """Bytes of all leaf-module outputs of one forward pass on ``example`` (1 x C x H x W)."""
    total = 0

    def hook(_module: nn.Module, _inputs: object, output: object) -> None:
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output.numel() * output.element_size()

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()
    return total


def points_per_chunk(model: nn.Module, names: Sequence[str], x: torch.Tensor, batch_size: int,
                     memory_mb: float) -> int:
    """How many points fit the budget: each needs its parameters plus a batch of activations."""
    params = dict(model.named_parameters())
    param_bytes = sum(params[n].numel() * params[n].element_size() for n in names)
    # x3: vmap keeps inputs and outputs of several ops alive at once (measured on LeNet-5/ResNet)
    act = 3 * activation_bytes(model, x[:1].to(next(model.parameters()).dtype))
    per_point = param_bytes + min(batch_size, x.shape[0]) * act
    return max(1, int(memory_mb * 2**20) // max(per_point, 1))


def _points(base: Mapping[str, torch.Tensor], directions: Sequence[Mapping[str, torch.Tensor]],
            coeffs: torch.Tensor) -> dict[str, torch.Tensor]:
    """{name: (G, *shape)} = base + coeffs @ directions, in the base's dtype."""
    out = {}
    for name, b in base.items():
        if not directions:  # the centre itself, once per requested point
            out[name] = b[None].expand(coeffs.shape[0], *b.shape)
            continue
        stacked = torch.stack([d[name].to(b.dtype) for d in directions])  # (k, *shape)
        offset = torch.tensordot(coeffs.to(b.dtype), stacked, dims=([1], [0]))
        out[name] = b[None] + offset
    return out


@torch.no_grad()
def evaluate_points(model: nn.Module, base: Mapping[str, torch.Tensor],
                    directions: Sequence[Mapping[str, torch.Tensor]], coeffs: torch.Tensor,
                    x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 256,
                    memory_mb: float = 64.0) -> torch.Tensor:
    """Mean cross-entropy at ``base + coeffs[g] @ directions`` for every point ``g`` (batched).

    Args:
        model: supplies the architecture, the parameters not in ``base`` and the buffers.
        base: the perturbed parameters' centre, ``{name: tensor}`` (a subset of the model's).
        directions: ``k`` mappings with the same keys and shapes as ``base``.
        coeffs: (G, k) coordinates of the points.
        x: images in [0, 1] (float) or uint8, N x C x H x W; y: int64 labels (N,).
        batch_size: data samples per forward pass.
        memory_mb: budget for one chunk of points (parameters + activations).

    Returns:
        (G,) float64 mean losses.
    """
    was_training = model.training
    model.eval()
    dtype = next(model.parameters()).dtype
    device = next(model.parameters()).device
    xs = x.float().div(255.0) if x.dtype == torch.uint8 else x
    xs, y = xs.to(device, dtype), y.to(device)
    fixed = {n: p for n, p in model.named_parameters() if n not in base}
    fixed.update(dict(model.named_buffers()))

    def logits(params: dict[str, torch.Tensor], xb: torch.Tensor) -> torch.Tensor:
        return functional_call(model, (params, fixed), (xb,))

    batched = vmap(logits, in_dims=(0, None))

    def loss_sums(params: dict[str, torch.Tensor], xb: torch.Tensor,
                  yb: torch.Tensor) -> torch.Tensor:
        # cross-entropy outside vmap, as logsumexp - target logit: on CPU, log_softmax over
        # vmap's strided (G, B, K) output was ~10x slower (benchmarks/README.md)
        out = batched(params, xb).contiguous()
        target = out.gather(2, yb.view(1, -1, 1).expand(out.shape[0], -1, 1)).squeeze(2)
        return (out.logsumexp(2) - target).sum(1)

    chunk = points_per_chunk(model, list(base), xs, batch_size, memory_mb)
    out = torch.zeros(coeffs.shape[0], dtype=torch.float64)
    for start in range(0, coeffs.shape[0], chunk):
        params = _points(base, directions, coeffs[start:start + chunk].to(device))
        total = torch.zeros(params[next(iter(params))].shape[0], dtype=torch.float64,
                            device=device)
        for b in range(0, xs.shape[0], batch_size):
            total += loss_sums(params, xs[b:b + batch_size], y[b:b + batch_size]).double()
        out[start:start + chunk] = total.cpu() / max(xs.shape[0], 1)
    model.train(was_training)
    return out


@torch.no_grad()
def evaluate_points_loop(model: nn.Module, base: Mapping[str, torch.Tensor],
                         directions: Sequence[Mapping[str, torch.Tensor]], coeffs: torch.Tensor,
                         x: torch.Tensor, y: torch.Tensor, *,
                         batch_size: int = 256) -> torch.Tensor:
    """Reference for :func:`evaluate_points`: set each point's weights in place, run the data.

    The model's parameters are restored afterwards.
    """
    was_training = model.training
    model.eval()
    params = dict(model.named_parameters())
    saved = {n: params[n].detach().clone() for n in base}
    base = {n: b.detach().clone() for n, b in base.items()}  # may alias the params we overwrite
    dtype = next(model.parameters()).dtype
    xs = x.float().div(255.0) if x.dtype == torch.uint8 else x
    xs = xs.to(params[next(iter(base))].device, dtype)
    y = y.to(xs.device)
    out = torch.zeros(coeffs.shape[0], dtype=torch.float64)
    try:
        for g in range(coeffs.shape[0]):
            point = _points(base, directions, coeffs[g:g + 1].to(xs.device))
            for n in base:
                params[n].copy_(point[n][0])
            total = 0.0
            for b in range(0, xs.shape[0], batch_size):
                logits = model(xs[b:b + batch_size])
                total += float(F.cross_entropy(logits, y[b:b + batch_size], reduction="sum"))
            out[g] = total / max(xs.shape[0], 1)
    finally:
        for n in base:
            params[n].copy_(saved[n])
        model.train(was_training)
    return out


def grid_coefficients(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """(len(ys) * len(xs), 2) coordinates of a grid, row-major: row i is ``y = ys[i]``."""
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
