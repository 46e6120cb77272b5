"""EM: error-minimizing noise (unlearnable examples, min-min), sample-wise and class-wise.

Huang et al., "Unlearnable Examples: Making Personal Data Unexploitable", ICLR 2021,
arXiv 2101.04898 (HanxunH/Unlearnable-Examples, f347155).

Distance measure: linf, ``eps`` = 8/255. Input ``x`` float in [0, 1], N x C x H x W; returns
``delta`` shaped like ``x`` with ``x + delta`` in [0, 1].

Algorithm (one *round*, repeated until the surrogate fits the noisy data):

1. train the surrogate for ``train_steps`` batches on ``clamp(x + delta, 0, 1)`` (SGD lr 0.1,
   momentum 0.9, wd 5e-4, grad-clip 5; batches continue through a shuffled stream of the data);
2. freeze it (eval mode) and update the noise of every batch with ``steps`` sign-gradient
   *descent* steps of ``step_size`` on the cross-entropy, projected to the eps-ball and [0, 1];
3. stop when the surrogate's accuracy on ``x + delta`` exceeds ``stop_acc`` or after
   ``max_rounds`` rounds (a cap the original lacks: some settings never converge, EM issue #24).

Class-wise (``classwise=True``, preset ``classwise``): one noise per class, searched on a seeded
class-stratified ``class_subset`` (20 %) of the data; after each batch's PGD every class's noise
becomes the mean of its samples' deltas, clamped to +-eps (original: 1 step of 0.8/255).

Deviations: the surrogate is trained by :func:`uebench.train.fit`, one ``fit`` "epoch" per round
on that round's ``train_steps`` batches; optimizer momentum carries over between rounds in memory
(:class:`~uebench.train.loop.FitState`; with a workdir also through fit's checkpoint, for resume),
so the surrogate sees exactly the original's sequence of SGD steps. The training clamps
``x + delta`` to [0, 1] (APBench does not).

Presets: ``apbench`` = 5 steps of 1.6/255, loader batch 128 (attack/em_poisons.py);
``classwise`` = the original class-wise setting. Long runs show a round bar (surrogate train
accuracy, accuracy on the noisy set) and resume from ``workdir`` after an interruption; raising
``max_rounds`` on a finished, unconverged run continues it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from uebench.attacks.base import clamp_to_image, register_attack
from uebench.attacks.surrogate import (
    RunState,
    attack_precision,
    batched,
    build_surrogate,
    pgd,
    sub_runtime,
)
from uebench.config import TrainCfg
from uebench.data.base import stratified_subset
from uebench.runtime import Runtime, derive_seed
from uebench.train.loop import FitState, evaluate, fit
from uebench.utils.io import atomic_write_text
from uebench.utils.progress import bar

STREAM = 8100


@dataclass(frozen=True)
class MinMinSpec:
    """Settings of the alternating min-min loop (shared with REM's ``apbench`` variant)."""

    eps: float
    steps: int
    step_size: float
    batch_size: int
    train_steps: int
    stop_acc: float
    max_rounds: int
    classwise: bool = False
    class_subset: float = 0.2
    random_start: bool = False
    # APBench's REM: a min-max PGD from a stored noise seeds every min-min update (0 steps = off)
    seed_eps: float = 0.0
    seed_steps: int = 0
    seed_step_size: float = 0.0


def surrogate_cfg(batch_size: int, rounds: int) -> TrainCfg:
    """EM's surrogate optimiser (configs/cifar10/resnet18.yaml); one fit epoch per round."""
    return TrainCfg(epochs=rounds, batch_size=batch_size, optimizer="sgd", lr=0.1, momentum=0.9,
                    weight_decay=5e-4, schedule="constant", augment="none", grad_clip=5.0)


def stream_indices(m: int, start: int, count: int, rt: Runtime, stream: int) -> torch.Tensor:
    """Positions ``[start, start + count)`` of an endless stream of seeded permutations of ``m``."""
    first, last = start // m, (start + count - 1) // m
    gens = (rt.generator(stream, 2, k) for k in range(first, last + 1))
    perms = [torch.randperm(m, generator=g) for g in gens]
    offset = start - first * m
    return torch.cat(perms)[offset : offset + count]


def _ce(y: torch.Tensor, sign: float = 1.0):
    return lambda logits: sign * F.cross_entropy(logits, y, reduction="none")


def _update_samplewise(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, delta: torch.Tensor,
    seed: torch.Tensor | None, spec: MinMinSpec, b: int, rt: Runtime,
) -> torch.Tensor:
    precision = attack_precision(x.device)

    def craft(i: int, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sl = slice(i * b, i * b + xb.shape[0])
        start = delta[sl]
        if seed is not None:  # min-max step first; its result is both the seed state and the start
            start, _ = pgd(model, xb, seed[sl], _ce(yb, -1.0), eps=spec.seed_eps,
                           step_size=spec.seed_step_size, steps=spec.seed_steps,
                           precision=precision)
            seed[sl] = start
        return pgd(model, xb, start, _ce(yb), eps=spec.eps, step_size=spec.step_size,
                   steps=spec.steps, precision=precision)

    return batched(x, y, craft, batch_size=b, store=None, rt=rt, desc="noise update")[0]


def _update_classwise(model: nn.Module, x: torch.Tensor, y: torch.Tensor, noise: torch.Tensor,
                      spec: MinMinSpec, b: int, rt: Runtime, rnd: int) -> torch.Tensor:
    precision = attack_precision(x.device)
    noise = noise.clone()
    order = torch.randperm(x.shape[0], generator=rt.generator(STREAM, 3, rnd)).to(x.device)
    for i in range(math.ceil(x.shape[0] / b)):
        idx = order[i * b : (i + 1) * b]
        xb, yb = x[idx], y[idx]
        eta, _ = pgd(model, xb, noise[yb], _ce(yb), eps=spec.eps, step_size=spec.step_size,
                     steps=spec.steps, precision=precision)
        sums = torch.zeros_like(noise).index_add_(0, yb, eta)
        counts = torch.bincount(yb, minlength=noise.shape[0])
        seen = counts > 0
        noise[seen] = (sums[seen] / counts[seen].view(-1, 1, 1, 1)).clamp(-spec.eps, spec.eps)
    return noise


def _initial_state(x: torch.Tensor, spec: MinMinSpec, num_classes: int, rt: Runtime) -> dict:
    shape = (num_classes, *x.shape[1:]) if spec.classwise else tuple(x.shape)
    noise = torch.zeros(shape, device=x.device)
    if spec.random_start:
        noise = torch.rand(shape, generator=rt.generator(STREAM, 4)).to(x.device)
        noise = (noise * 2 - 1) * spec.eps
        noise = noise if spec.classwise else clamp_to_image(x, noise)
    seed = torch.zeros_like(noise) if spec.seed_steps > 0 else None
    return {"noise": noise, "seed": seed, "round": 0, "done": False, "acc": 0.0}


def run_min_min(
    x: torch.Tensor, y: torch.Tensor, spec: MinMinSpec, *, num_classes: int, rt: Runtime,
    workdir: Path | None, surrogate: str, width: float, name: str,
) -> torch.Tensor:
    """The alternating loop; returns ``delta`` for every sample (class noise indexed by label)."""
    config = {**dataclasses.asdict(spec), "surrogate": surrogate, "surrogate_width": width}
    config.pop("max_rounds")  # may be raised to continue a run
    work = None
    if spec.classwise:
        n_sub = max(num_classes, round(spec.class_subset * x.shape[0]))
        work = stratified_subset(y.cpu(), n_sub, derive_seed(rt.seed, STREAM, 5)).to(x.device)
    xw, yw = (x, y) if work is None else (x[work], y[work])
    b = min(spec.batch_size, xw.shape[0])
    with RunState(workdir, name, config) as state:
        saved = state.load("state.pt", x.device)
        if saved is None:
            state.remove("surrogate")  # a round-1 crash may have left a surrogate checkpoint
            saved = _initial_state(x, spec, num_classes, rt)
        noise, seed, rnd, done = saved["noise"], saved["seed"], saved["round"], saved["done"]
        acc = saved.get("acc", 0.0)
        model = build_surrogate(surrogate, x, num_classes, width=width, rt=rt, stream=(STREAM, 0))
        # the surrogate's optimiser continues in memory between rounds (FitState); its
        # checkpoint file is only written when a workdir makes the run resumable
        srt, sdir, fstate = sub_runtime(rt, STREAM, 1), state.store("surrogate"), FitState()
        pbar = bar(spec.max_rounds, enabled=rt.show_progress, desc=name, unit="round", initial=rnd)
        while not done and rnd < spec.max_rounds:
            rnd += 1
            per_sample = noise[yw] if spec.classwise else noise
            chunk = spec.train_steps * b
            idx = stream_indices(xw.shape[0], (rnd - 1) * chunk, chunk, rt, STREAM).to(x.device)
            rows = fit(model, (xw[idx] + per_sample[idx]).clamp(0, 1), yw[idx],
                       cfg=surrogate_cfg(b, rnd), rt=srt, run_dir=sdir, state=fstate,
                       desc=f"{name} surrogate")
            model.eval()
            if spec.classwise:
                noise = _update_classwise(model, xw, yw, noise, spec, b, rt, rnd)
            else:
                noise = _update_samplewise(model, x, y, noise, seed, spec, b, rt)
            per_sample = noise[yw] if spec.classwise else noise
            acc = evaluate(model, (xw + per_sample).clamp(0, 1), yw,
                           precision=attack_precision(x.device))["acc"]
            done = acc > spec.stop_acc
            state.save("state.pt",
                       {"noise": noise, "seed": seed, "round": rnd, "done": done, "acc": acc})
            pbar.update(1)
            pbar.set_postfix(surrogate_acc=f"{rows[-1]['train_acc']:.3f}", noisy_acc=f"{acc:.3f}")
        pbar.close()
        if workdir is not None:
            atomic_write_text(Path(workdir) / "diagnostics.json", json.dumps(
                {"rounds": rnd, "converged": bool(done), "stop_acc": spec.stop_acc,
                 "surrogate_acc_on_poison": round(float(acc), 4)}))
    delta = noise[y] if spec.classwise else noise
    return clamp_to_image(x, delta)


@register_attack(
    "em",
    norm="linf",
    presets={
        "apbench": {"steps": 5, "step_size": 1.6 / 255, "batch_size": 128},
        "classwise": {"classwise": True, "steps": 1},
    },
    surrogate=True,
    # small settings for the registry-driven contract tests (64 tiny images, seconds)
    test_params={"surrogate": "tiny", "steps": 2, "train_steps": 2, "batch_size": 32,
                 "max_rounds": 2, "stop_acc": 1.0},
    description="error-minimizing noise (min-min with an alternately trained surrogate); "
    "sample- or class-wise",
    paper="Huang et al., ICLR 2021, arXiv 2101.04898",
)
def em(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    num_classes: int,
    rt: Runtime,
    workdir: Path | None = None,
    eps: float = 8 / 255,
    steps: int = 20,
    step_size: float = 0.8 / 255,
    classwise: bool = False,
    class_subset: float = 0.2,
    train_steps: int = 10,
    batch_size: int = 512,
    stop_acc: float = 0.99,
    max_rounds: int = 20,
    random_start: bool = False,
    surrogate: str = "resnet18",
    surrogate_width: float = 1.0,
) -> torch.Tensor:
    """Error-minimizing noise.

    Args:
        x: clean images, float in [0, 1], N x C x H x W, on ``rt.device``.
        y: int64 labels (N,).
        num_classes: number of classes.
        rt: runtime (device, seed, progress).
        workdir: checkpoint directory (``workdir/em``); resumes an interrupted run.
        eps: linf radius.
        steps, step_size: PGD descent steps per noise update and their size.
        classwise: one noise per class (searched on ``class_subset`` of the data).
        class_subset: fraction of the data the class-wise search uses.
        train_steps: surrogate SGD batches per round.
        batch_size: surrogate and noise-update batch size.
        stop_acc: stop once the surrogate's accuracy on ``x + delta`` exceeds this; 1.0 never
            stops early (always ``max_rounds`` rounds: the min-min objective optimised further).
        max_rounds: cap on rounds (EM has none; 20 rounds of 10 batches + a full noise pass).
        random_start: start from uniform(-eps, eps) instead of zero noise.
        surrogate, surrogate_width: zoo model of the surrogate and its width multiplier.

    Returns:
        ``delta`` shaped like ``x``.
    """
    spec = MinMinSpec(eps=eps, steps=steps, step_size=step_size, batch_size=batch_size,
                      train_steps=train_steps, stop_acc=stop_acc, max_rounds=max_rounds,
                      classwise=classwise, class_subset=class_subset, random_start=random_start)
    return run_min_min(x, y, spec, num_classes=num_classes, rt=rt, workdir=workdir,
                       surrogate=surrogate, width=surrogate_width, name="em")
