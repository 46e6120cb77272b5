"""Compat SAL engine: the official code's optimiser semantics, run in lockstep (paper parity).

Ye et al., ICLR 2025 (arXiv:2509.08058), Eq. 3 as the official ``layer_sharpness`` computes it
(docs/sal.md, "One measurement"). Per layer ``l`` and sign (``max`` ascends CE, ``min``
descends it) a clone ``Δ`` of ``W_l`` starts at 0. For ``rounds`` rounds (10):

1. one pass of plain SGD (lr 0.1, no momentum/weight decay) over the training data pipeline
   ``task.data`` (:class:`SALData`: batch size, augmentation, crop padding, ``drop_last``),
   reshuffled, fresh crop/flip draws;
2. one projection: if ‖Δ‖/‖θ_l‖ > ε then Δ ← Δ·ε/(‖Δ‖/‖θ_l‖);
3. one ``no_grad`` pass (fresh draws) measuring each clone's mean loss; ``max_loss``/``min_loss``
   start at the origin and change only on improvement.

Then s_max = max_loss − origin, s_min = origin − min_loss and SAL = s_max if |s_max| > |s_min| else
s_min (≥ 0). Models stay in eval mode (BatchNorm running statistics) throughout, as the official
code does.

Lockstep (docs/sal.md, "Compat engine"): with frozen eval-mode weights, the loss as a function
of ``W_l`` factors through the layer's suffix inputs, which do not depend on ``W_l``. So all
layers and both signs advance together over ONE pass per round: each batch gets one clean forward
(:meth:`SuffixPlan.capture`), and every (layer, sign) clone recomputes only its suffix, the two
signs of a layer batched with ``vmap``. All clones therefore see the same batch stream, where the
official code draws an independent shuffle/augmentation stream per clone; the two are equal in
distribution (each clone sees i.i.d.-shuffled, freshly augmented passes either way), and
:mod:`.reference` replays this exact stream with full models to check the engine to ~1e-10.

Streams: SGD pass of round ``r`` draws from ``task.generator(r, 0)``, its evaluation pass from
``task.generator(r, 1)``. The ``exact`` origin is the mean eval-mode clean loss over round 0's
evaluation pass (computed on the same batches, for free): every image with ``drop_last=False``,
a random ``(n // batch_size) * batch_size`` of them with ``drop_last=True`` (the paper's loader).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

import torch

from uebench.data.loader import DeviceLoader
from uebench.errors import ConfigError
from uebench.learnability.engines import register_engine
from uebench.learnability.suffix import SuffixPlan
from uebench.learnability.task import SALResult, SALTask, measuring
from uebench.utils.progress import bar

# rows of every layer's stacked perturbation: 0 = the "max" clone (ascends), 1 = the "min" clone
MAX, MIN = 0, 1


def sal_loader(task: SALTask) -> DeviceLoader:
    """The SAL data pipeline: the training loader ``task.data`` replays (shuffled, augmented)."""
    data = task.data
    if data is None:
        raise ConfigError("this SAL engine replays the training data pipeline: give the task "
                          "data=SALData(...) (or call run_sal with data=TrainCfg/SALData)")
    if task.y.dim() >= 3 and data.augment != "none":
        # the loader moves the images only: crops and flips would misalign per-pixel targets
        raise ConfigError(f"per-pixel targets ({tuple(task.y.shape)}) cannot be replayed with "
                          f"augment={data.augment!r}; pass SALData(..., augment='none')")
    loader = DeviceLoader(
        task.x, task.y, batch_size=data.batch_size, shuffle=True, drop_last=data.drop_last,
        augment=data.augment, device=task.rt.device, padding=data.crop_padding,
    )
    if len(loader) == 0:
        raise ConfigError(f"{task.x.shape[0]} images give no batch of {data.batch_size} "
                          f"(drop_last={data.drop_last}); lower the batch size or pass "
                          "drop_last=False")
    return loader


def project_rows(deltas: torch.Tensor, theta_norm: torch.Tensor, eps: float) -> None:
    """The official once-per-round projection, per clone row, in place."""
    for row in deltas:
        ratio = row.norm() / theta_norm
        if ratio > eps:
            row.mul_(eps / ratio)


def sal_from_extremes(max_loss: float, min_loss: float,
                      origin: float) -> tuple[float, float, float]:
    """(SAL, s_max, s_min) with the official sign rule."""
    s_max, s_min = max_loss - origin, origin - min_loss
    return (s_max if abs(s_max) > abs(s_min) else s_min), s_max, s_min


def _sgd_pass(plan: SuffixPlan, deltas: Sequence[torch.Tensor], batches: Iterable,
              task: SALTask, lr: float) -> None:
    for xb, yb in batches:
        xb = task.images(xb)
        with torch.no_grad(), task.autocast():
            _, cache = plan.capture(xb)
        for layer, delta in zip(plan.layers, deltas):
            with task.autocast():
                losses = task.losses(plan.batched_suffix(layer, delta, cache), yb)
            # the max clone minimises -CE, the min clone CE: one gradient, one SGD step for both
            (grad,) = torch.autograd.grad(losses[MIN] - losses[MAX], delta)
            with torch.no_grad():
                delta.add_(grad, alpha=-lr)


@torch.no_grad()
def _eval_pass(plan: SuffixPlan, deltas: Sequence[torch.Tensor], batches: Iterable,
               task: SALTask) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean loss of every clone (layers x 2) and of the clean model over one pass."""
    device = task.rt.device
    sums = torch.zeros(len(deltas), 2, dtype=torch.float64, device=device)
    clean = torch.zeros((), dtype=torch.float64, device=device)
    seen = 0
    for xb, yb in batches:
        xb = task.images(xb)
        with task.autocast():
            logits, cache = plan.capture(xb)
            clean += task.losses(logits[None], yb, "sum")[0].double()
            for i, (layer, delta) in enumerate(zip(plan.layers, deltas)):
                logits = plan.batched_suffix(layer, delta, cache)
                sums[i] += task.losses(logits, yb, "sum").double()
        seen += int(yb.shape[0])
    return sums / seen, clean / seen


@register_engine(
    "compat", label="compat (official SGD semantics, lockstep)", paper_parity=True,
    default_origin="official", smoke_options={"rounds": 1},
    description="official optimiser semantics (SGD lr 0.1, 10 rounds over the replayed training "
                "pipeline, one projection and one evaluation pass per round), all layers in "
                "lockstep",
)
def compat_sal(task: SALTask, *, rounds: int = 10, lr: float = 0.1) -> SALResult:
    """SAL with the official semantics (see the module docstring); ``rounds`` 10, ``lr`` 0.1."""
    if rounds < 1:
        raise ConfigError(f"rounds must be >= 1, got {rounds}")
    start = time.perf_counter()
    with measuring(task.model, task.rt.device, task.dtype) as model:
        plan = SuffixPlan(model, task.layers)
        loader = sal_loader(task)
        norms = [plan.weight(name).detach().norm() for name in plan.layers]
        deltas = [torch.zeros((2, *plan.weight(name).shape), dtype=plan.weight(name).dtype,
                              device=task.rt.device, requires_grad=True) for name in plan.layers]
        pbar = bar(rounds, enabled=task.rt.show_progress, desc="SAL compat", unit="round")
        for r in range(rounds):
            _sgd_pass(plan, deltas, loader.batches(task.generator(r, 0)), task, lr)
            with torch.no_grad():
                for delta, norm in zip(deltas, norms):
                    project_rows(delta, norm, task.eps)
            losses, clean = _eval_pass(plan, deltas, loader.batches(task.generator(r, 1)), task)
            if r == 0:
                origin = task.resolve_origin(float(clean))
                max_loss = torch.full((len(deltas),), origin, dtype=torch.float64)
                min_loss = max_loss.clone()
            max_loss = torch.maximum(max_loss, losses[:, MAX].cpu())
            min_loss = torch.minimum(min_loss, losses[:, MIN].cpu())
            pbar.update(1)
        pbar.close()
        ratios = {name: (d.detach().flatten(1).norm(dim=1) / norm).tolist()
                  for name, d, norm in zip(plan.layers, deltas, norms)}
    res = result_from_extremes(plan.layers, max_loss.tolist(), min_loss.tolist(), origin, "compat",
                  time.perf_counter() - start)
    res.details = {"rounds": rounds, "lr": lr, "batches_per_pass": len(loader),
                   "delta_norm_ratio": ratios}  # final ‖Δ‖/‖θ_l‖ of the (max, min) clones
    return res


def result_from_extremes(layers: Sequence[str], max_loss: Sequence[float],
                         min_loss: Sequence[float], origin: float, engine: str,
                         seconds: float) -> SALResult:
    """A :class:`SALResult` from each layer's best max/min losses (official sign rule)."""
    values, s_max, s_min = {}, {}, {}
    for name, hi, lo in zip(layers, max_loss, min_loss):
        values[name], s_max[name], s_min[name] = sal_from_extremes(hi, lo, origin)
    return SALResult(values, s_max, s_min, origin, engine, seconds)
