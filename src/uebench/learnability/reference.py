"""Reference SAL loop: the official ``layer_sharpness`` written plainly, one layer at a time.

Same semantics as :mod:`.compat` (docs/sal.md, "One measurement"), none of its tricks: per
layer, two deep copies of the eval-mode model ("max", "min"), every parameter frozen except that
layer's weight, ``torch.optim.SGD(lr)`` on it, a full forward and backward per step. Rounds: one
SGD pass per clone, one projection, one ``no_grad`` pass evaluating both clones on the same
batches.

It replays the compat engine's batch stream (``task.generator(r, 0)`` for the SGD passes,
``task.generator(r, 1)`` for the evaluation passes, identical for every clone), so in float64 the
two give the same SAL to ~1e-10 (with ``drop_last`` either way); the test suite checks that, and
``benchmarks/sal_engines.py`` times both. Registered as engine ``reference`` with ``oracle=True``:
it exists to validate and to measure the speed-up, not for production runs.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from uebench.learnability.compat import result_from_extremes, sal_loader
from uebench.learnability.engines import register_engine
from uebench.learnability.task import SALResult, SALTask, full_precision, measuring
from uebench.models.base import layer_names


def _clone(model: nn.Module, layer: str, lr: float) -> tuple[nn.Module, torch.Tensor,
                                                           torch.optim.Optimizer]:
    clone = copy.deepcopy(model)
    for p in clone.parameters():
        p.requires_grad_(False)
    weight = clone.get_submodule(layer).weight
    weight.requires_grad_(True)
    return clone, weight, torch.optim.SGD([weight], lr=lr, momentum=0.0, weight_decay=0.0)


def _loss(task: SALTask, logits: torch.Tensor, y: torch.Tensor,
          reduction: str = "mean") -> torch.Tensor:
    """The task's loss of one model's outputs (``task.loss``; cross-entropy when None)."""
    if task.loss is None:
        return F.cross_entropy(logits, y, reduction=reduction)
    per_sample = task.loss(logits, y)
    return per_sample.sum() if reduction == "sum" else per_sample.mean()


def _eval_loss_sums(models: list[nn.Module], batches: Iterable,
                    task: SALTask) -> tuple[list[float], int]:
    sums, seen = [0.0] * len(models), 0
    with torch.no_grad(), task.autocast():
        for xb, yb in batches:
            xb = task.images(xb)
            for i, m in enumerate(models):
                sums[i] += float(_loss(task, full_precision(m(xb)), yb, "sum"))
            seen += int(yb.shape[0])
    return sums, seen


@register_engine(
    "reference", label="reference (plain official loop, test oracle)", paper_parity=True,
    default_origin="official", oracle=True, smoke_options={"rounds": 1},
    description="the official layer_sharpness loop written plainly (deep copies, torch.optim.SGD, "
                "one layer at a time), replaying compat's batch stream",
)
def reference_sal(task: SALTask, *, rounds: int = 10, lr: float = 0.1) -> SALResult:
    """SAL by the plain per-layer loop; returns a :class:`SALResult` like the engines."""
    start = time.perf_counter()
    with measuring(task.model, task.rt.device, task.dtype) as model:
        layers = list(task.layers) if task.layers is not None else layer_names(model)
        loader = sal_loader(task)
        # origin: the clean model over round 0's evaluation pass (as in the compat engine)
        (clean,), seen = _eval_loss_sums([model], loader.batches(task.generator(0, 1)), task)
        origin = task.resolve_origin(clean / seen)
        max_losses, min_losses = [], []
        for layer in layers:
            theta = model.get_submodule(layer).weight.detach().clone()
            clones = [_clone(model, layer, lr) for _ in ("max", "min")]
            max_loss = min_loss = origin
            for r in range(rounds):
                for sign, (clone, weight, opt) in zip((-1.0, 1.0), clones):
                    for xb, yb in loader.batches(task.generator(r, 0)):
                        with task.autocast():
                            logits = full_precision(clone(task.images(xb)))
                            loss = sign * _loss(task, logits, yb)
                        opt.zero_grad(set_to_none=True)
                        loss.backward()
                        opt.step()
                    with torch.no_grad():  # one projection per round
                        delta = weight - theta
                        ratio = delta.norm() / theta.norm()
                        if ratio > task.eps:
                            weight.copy_(theta + delta * (task.eps / ratio))
                sums, seen = _eval_loss_sums([c[0] for c in clones],
                                             loader.batches(task.generator(r, 1)), task)
                max_loss = max(max_loss, sums[0] / seen)
                min_loss = min(min_loss, sums[1] / seen)
            max_losses.append(max_loss)
            min_losses.append(min_loss)
    return result_from_extremes(layers, max_losses, min_losses, origin, "reference",
                   time.perf_counter() - start)
