"""Fast SAL engine (the default): full-batch projected gradient search, following the definition.

SAL(θ_l, ε) = max_{‖v‖ ≤ ε‖θ_l‖} |L(θ_l + v) − L(θ_l)| (Ye et al., ICLR 2025, arXiv:2509.08058,
Eq. 3, with the official code's relative ball; docs/sal.md, "Fast engine"). Per layer and sign,
from Δ₀ = 0:

    Δ_{k+1} = Π(Δ_k ± η_k · r · g_k / ‖g_k‖),   r = ε‖θ_l‖,   η = (2, 1, 1, ½, ½, ½, ...)

with g_k the *full-batch* gradient on a fixed, seeded probe subset of the training data (no
augmentation) and Π the projection onto the ball, every step. Each iterate's probe loss is free
(it is the forward of its gradient); the best iterate per sign is kept (largest loss for +,
smallest for −). SAL = max(L(Δ⁺) − origin, origin − L(Δ⁻), 0), with L and the ``exact`` origin
(eval-mode clean loss) estimated on the full set by :mod:`.scoring`: the probe part exactly plus a
held-out random sample of the rest (``eval_size``), or on the probe alone (``eval_size=None``,
biased: it overstates how far the perturbation found moves the full-set loss). The ``official``
origin replaces the clean loss by the epoch's running train loss.

Cost (docs/sal.md, "Cost model"): the probe set's frontier values are cached once per measurement in
chunks (layer groups bounded by ``cache_gb``; a second clean pass only when one group does not fit);
the first step of every layer uses ONE full forward + backward at Δ = 0 (the gradient is the same
for both signs); later steps run only the layer's suffix, both signs and all restarts batched with
``vmap``. Restarts (``restarts`` > 0) add random starts inside the ball (seeded). Scoring a
held-out image costs a clean forward plus both signs' suffix forwards of every layer.

:func:`strong_reference` is the expensive search the benchmarks compare against (many steps,
random restarts, every image, a decaying step schedule).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

import torch

from uebench.errors import ConfigError
from uebench.learnability.engines import register_engine
from uebench.learnability.scoring import sal_from_losses, score_losses, split_probe, stratified
from uebench.learnability.suffix import Cache, SuffixPlan
from uebench.learnability.task import SALResult, SALTask, measuring
from uebench.utils.progress import bar

Chunk = tuple[Cache, torch.Tensor]  # (frontier values, labels) of one probe chunk
# Defaults chosen by benchmarks/sal_sweep.py (benchmarks/README.md §2): ≤ 1 training epoch of
# FLOPs per measurement at paper scale (0.89), the best agreement with a strong search found there.
DEFAULT_STEPS, DEFAULT_PROBE, DEFAULT_EVAL = 3, 1024, 1024


def step_sizes(steps: int) -> tuple[float, ...]:
    """η_k in units of the radius: 2, 1, 1, ½, ½, then ½ for every further step."""
    head = (2.0, 1.0, 1.0, 0.5, 0.5)
    return tuple(head[k] if k < len(head) else 0.5 for k in range(steps))


def strong_step_sizes(steps: int) -> tuple[float, ...]:
    """2, 1, 1, ½, ½, then halving every 10 steps (a fine final search; strong_reference)."""
    head = (2.0, 1.0, 1.0, 0.5, 0.5)[:steps]
    return head + tuple(0.5 ** (1 + (k - 5) // 10) for k in range(5, steps))


def _chunked(task: SALTask, x: torch.Tensor, y: torch.Tensor,
             chunk_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for start in range(0, int(x.shape[0]), chunk_size):
        stop = start + chunk_size
        yield task.images(x[start:stop]), y[start:stop].to(task.rt.device)


def _layer_groups(plan: SuffixPlan, x_small: torch.Tensor, n_images: int,
                  budget: float) -> list[list[str]]:
    """Consecutive layers whose cached frontier for ``n_images`` fits ``budget`` bytes together."""
    with torch.no_grad():
        _, cache = plan.capture(x_small)
    per_image = {k: v.numel() * v.element_size() / x_small.shape[0]
                 for k, v in cache.items() if isinstance(v, torch.Tensor)}
    groups: list[list[str]] = [[]]
    nodes: set[str] = set()
    for layer in plan.layers:
        grown = nodes | set(plan.inputs(layer))
        if groups[-1] and sum(per_image.get(k, 0.0) for k in grown) * n_images > budget:
            groups.append([])
            grown = set(plan.inputs(layer))
        groups[-1].append(layer)
        nodes = grown
    return groups


def _cache_probe(plan: SuffixPlan, task: SALTask, x: torch.Tensor, y: torch.Tensor,
                 layers: Sequence[str], chunk_size: int, weights: list[torch.Tensor] | None,
                 ) -> tuple[list[Chunk], float, list[torch.Tensor] | None]:
    """Frontier values of ``layers`` for every chunk; with ``weights``, also the clean loss and
    the gradient of the mean loss w.r.t. each weight (one full forward + backward at Δ = 0)."""
    nodes = list(dict.fromkeys(k for name in layers for k in plan.inputs(name)))
    chunks: list[Chunk] = []
    loss = torch.zeros((), dtype=torch.float64, device=task.rt.device)
    grads = [torch.zeros_like(w) for w in weights] if weights is not None else None
    for p in weights or []:
        p.requires_grad_(True)
    for xc, yc in _chunked(task, x, y, chunk_size):
        with torch.set_grad_enabled(weights is not None), task.autocast():
            logits, cache = plan.capture(xc, nodes)
            total = task.losses(logits[None], yc, "sum")[0]
        if weights is not None:
            for g, part in zip(grads, torch.autograd.grad(total, weights)):
                g += part
        loss += total.detach().double()
        chunks.append(({k: v.detach() if isinstance(v, torch.Tensor) else v
                        for k, v in cache.items()}, yc))
    for p in weights or []:
        p.requires_grad_(False)
    n = int(x.shape[0])
    return chunks, float(loss) / n, ([g / n for g in grads] if grads is not None else None)


def _loss_grad(plan: SuffixPlan, layer: str, deltas: torch.Tensor, chunks: Sequence[Chunk],
               task: SALTask, need_grad: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Mean probe loss (S,) of each stacked perturbation and its gradient (S x weight)."""
    n = sum(int(yc.shape[0]) for _, yc in chunks)
    d = deltas.detach().requires_grad_(need_grad)
    loss = torch.zeros(deltas.shape[0], dtype=torch.float64, device=deltas.device)
    grad = torch.zeros_like(deltas) if need_grad else None
    for cache, yc in chunks:
        with torch.set_grad_enabled(need_grad), task.autocast():
            sums = task.losses(plan.batched_suffix(layer, d, cache), yc, "sum")
        if need_grad:
            grad += torch.autograd.grad(sums.sum(), d)[0]
        loss += sums.detach().double()
    return loss / n, (grad / n if grad is not None else None)


def _project(deltas: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    norms = deltas.flatten(1).norm(dim=1)
    factor = (radius / norms.clamp_min(torch.finfo(norms.dtype).tiny)).clamp(max=1.0)
    return deltas * factor.view(-1, *[1] * (deltas.dim() - 1))


def _random_starts(shape: torch.Size, count: int, radius: torch.Tensor, gen: torch.Generator,
                   like: torch.Tensor) -> torch.Tensor:
    """``count`` points uniform in radius and direction inside the ball (seeded on CPU)."""
    v = torch.randn((count, *shape), generator=gen, dtype=torch.float64)
    u = torch.rand(count, generator=gen, dtype=torch.float64)
    v = v / v.flatten(1).norm(dim=1).view(-1, *[1] * len(shape)) * u.view(-1, *[1] * len(shape))
    return v.to(like.device, like.dtype) * radius


def _pgd(plan: SuffixPlan, layer: str, chunks: Sequence[Chunk], task: SALTask, *,
         etas: Sequence[float], restarts: int,
         first: tuple[float, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Best (Δ⁺, Δ⁻) stacked (2 x weight) and their probe losses (2,)."""
    weight = plan.weight(layer).detach()
    radius = task.eps * weight.norm()
    signs = torch.tensor([1.0, -1.0] * (1 + restarts), dtype=weight.dtype, device=weight.device)
    starts = torch.zeros((2, *weight.shape), dtype=weight.dtype, device=weight.device)
    if restarts:
        gen = task.generator(102, plan.layers.index(layer))
        more = _random_starts(weight.shape, 2 * restarts, radius, gen, weight)
        starts = torch.cat([starts, more])
    view = (-1,) + (1,) * weight.dim()
    deltas, best_delta = starts, starts.clone()
    best_score = torch.full(signs.shape, -torch.inf, dtype=torch.float64, device=weight.device)
    origin, g0 = first
    for k in range(len(etas) + 1):
        if k == 0:  # Δ = 0 rows: loss and gradient known from the clean pass
            loss = torch.full((2,), origin, dtype=torch.float64, device=weight.device)
            grad = torch.stack([g0, g0])
            if restarts:
                more_loss, more_grad = _loss_grad(plan, layer, deltas[2:], chunks, task)
                loss, grad = torch.cat([loss, more_loss]), torch.cat([grad, more_grad])
        else:
            loss, grad = _loss_grad(plan, layer, deltas, chunks, task, need_grad=k < len(etas))
        score = signs.double() * loss
        better = score > best_score
        best_score = torch.where(better, score, best_score)
        best_delta = torch.where(better.view(view), deltas, best_delta)
        if k == len(etas):
            break
        direction = grad / grad.flatten(1).norm(dim=1).clamp_min(1e-30).view(view)
        deltas = _project(deltas + (signs * etas[k] * radius).view(view) * direction, radius)
    # best start per sign: rows 0, 2, 4, ... are "+", rows 1, 3, 5, ... are "-"
    pick = [int(best_score[s::2].argmax()) * 2 + s for s in (0, 1)]
    return best_delta[pick], (best_score[pick] * torch.tensor([1.0, -1.0], dtype=torch.float64,
                                                              device=weight.device))


def _search(plan: SuffixPlan, task: SALTask, x: torch.Tensor, y: torch.Tensor, *,
            etas: Sequence[float], restarts: int, chunk_size: int, cache_gb: float,
            ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], float, int]:
    """Best (Δ⁺, Δ⁻) per layer, their probe losses, the clean probe loss, the layer groups."""
    groups = _layer_groups(plan, task.images(x[:2]), int(x.shape[0]), cache_gb * 2**30)
    weights = [plan.weight(name) for name in plan.layers]
    best, losses = {}, {}
    pbar = bar(len(plan.layers), enabled=task.rt.show_progress, desc="SAL fast", unit="layer")
    for gi, group in enumerate(groups):
        chunks, clean, grads = _cache_probe(plan, task, x, y, group, chunk_size,
                                            weights if gi == 0 else None)
        if gi == 0:
            probe_clean, first_grads = clean, dict(zip(plan.layers, grads))
        for name in group:
            best[name], losses[name] = _pgd(plan, name, chunks, task, etas=etas,
                                            restarts=restarts, first=(probe_clean,
                                                                      first_grads[name]))
            pbar.update(1)
        del chunks
    pbar.close()
    return best, losses, probe_clean, len(groups)


@register_engine(
    "fast", label="fast (definition-faithful PGD)", paper_parity=False, default_origin="exact",
    smoke_options={"probe_size": 32, "eval_size": 32, "steps": 2},
    description="full-batch normalised projected gradient ascent/descent per layer on a seeded "
                "probe subset, best iterate scored on held-out images; follows the definition",
)
def fast_sal(task: SALTask, *, steps: int = DEFAULT_STEPS,
             probe_size: int | str | None = DEFAULT_PROBE,
             eval_size: int | str | None = DEFAULT_EVAL, restarts: int = 0, chunk_size: int = 512,
             cache_gb: float = 4.0, etas: Sequence[float] | None = None,
             return_deltas: bool = False) -> SALResult:
    """SAL by full-batch normalised projected gradient steps (see the module docstring).

    Args:
        task: model, data, ε, layers, origin, dtype/precision and seeds (``task.data`` unused).
        steps: K gradient steps per layer and sign (K + 1 iterates are scored).
        probe_size: images in the search set (seeded subset; ``None``/``"all"``: every image).
        eval_size: held-out images for the full-set estimate (:mod:`.scoring`: the probe part
            exact, the rest from this many images outside the probe; ``"all"`` = every one, the
            exact full-set value); ``None`` = score on the probe alone (biased upwards).
        restarts: extra random starts inside the ball per sign (seeded).
        chunk_size: images per forward chunk (bounds activation memory).
        cache_gb: budget for the cached frontier values of one layer group.
        etas: step sizes in units of the radius (default :func:`step_sizes`).
        return_deltas: keep the best (Δ⁺, Δ⁻) per layer in ``details["deltas"]`` (2 x weight).
    """
    start = time.perf_counter()
    etas = tuple(etas) if etas is not None else step_sizes(steps)
    if not etas or restarts < 0:
        raise ConfigError(f"need steps >= 1 and restarts >= 0, got {len(etas)}, {restarts}")
    probe, held, scored_on = split_probe(int(task.x.shape[0]), probe_size, eval_size,
                                         task.generator(100))
    with measuring(task.model, task.rt.device, task.dtype) as model:
        plan = SuffixPlan(model, task.layers)
        best, losses, exact, groups = _search(
            plan, task, task.x[probe], task.y[probe], etas=etas, restarts=restarts,
            chunk_size=chunk_size, cache_gb=cache_gb)
        if held is not None:  # the full-set loss: probe part exact, the rest estimated
            parts = score_losses(plan, task, task.x[held], task.y[held], best, chunk_size)
            rest = int(task.x.shape[0]) - int(probe.numel())
            losses, exact = stratified([(losses, exact, int(probe.numel())), (*parts, rest)])
        ratios = {k: (v.flatten(1).norm(dim=1) / plan.weight(k).norm()).tolist()
                  for k, v in best.items()}
    res = sal_from_losses(losses, task.resolve_origin(exact), "fast", start)
    res.details = {"probe_size": int(probe.numel()), "steps": len(etas), "etas": list(etas),
                   "restarts": restarts, "scored_on": scored_on,
                   "eval_size": int(held.numel()) if held is not None else 0,
                   "layer_groups": groups, "delta_norm_ratio": ratios}
    if return_deltas:
        res.details["deltas"] = {k: v.detach().cpu() for k, v in best.items()}
    return res


def strong_reference(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, rt,
                     eps: float = 0.05, layers: Sequence[str] | None = None, steps: int = 50,
                     restarts: int = 3, **task_options) -> SALResult:
    """An expensive search to judge the fast engine: K = 50, 3 random restarts (plus the zero
    start), every image as probe and evaluation set, step sizes :func:`strong_step_sizes`."""
    chunk_size = task_options.pop("chunk_size", 512)
    task = SALTask(model, x, y, rt, eps=eps, layers=tuple(layers) if layers else None,
                   **task_options)
    res = fast_sal(task, steps=steps, probe_size=None, restarts=restarts, chunk_size=chunk_size,
                   etas=strong_step_sizes(steps))
    res.engine = "strong_reference"
    return res
