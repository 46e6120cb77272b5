"""Sharpness-Aware Learnability (SAL): public API, engine registry and the per-epoch callback.

SAL (Ye et al., *How Far Are We From True Unlearnability?*, ICLR 2025, arXiv:2509.08058, Eq. 3)
of layer ``l`` = the largest change of the training loss when only that layer's weight moves inside
the ball ‖v‖ ≤ ε‖θ_l‖ (relative, as the official code), other layers frozen, BatchNorm in eval
mode. A layer is every ``nn.Conv2d``/``nn.Linear`` weight, named by module path
(:func:`uebench.models.base.layer_names`). Two engines (docs/sal.md):

- ``fast`` (default): full-batch projected gradient search on a fixed probe subset; follows the
  definition. Its UD is a definition-faithful number, not the paper's.
- ``compat``: the official optimiser semantics (SGD lr 0.1, 10 rounds, augmented passes, official
  origin), run in lockstep; for paper parity.

``measure_sal`` returns ``{layer: SAL}`` (floats ≥ 0); ``run_sal`` the full :class:`SALResult`;
``SALCallback`` plugs into ``train.fit`` and measures after every epoch.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from uebench.errors import ConfigError
from uebench.learnability.compat import compat_sal
from uebench.learnability.fast import fast_sal
from uebench.learnability.suffix import ORIGINS, SALResult, SALTask, SuffixPlan
from uebench.registry import Registry
from uebench.runtime import Runtime

EngineFn = Callable[..., SALResult]
SAL_ENGINES: Registry[EngineFn] = Registry("sal engine")
SAL_ENGINES.register(
    "fast", default_origin="exact",
    description="full-batch PGD (K=5) on a fixed probe subset; follows the definition (default)",
)(fast_sal)
SAL_ENGINES.register(
    "compat", default_origin="official",
    description="official optimiser semantics (SGD 0.1, 10 rounds, augmented passes); lockstep",
)(compat_sal)


def check_engine_options(engine: str, options: Mapping[str, Any]) -> None:
    """Raise ``TypeError`` now (not after an epoch of training) for an unknown engine option."""
    params = inspect.signature(SAL_ENGINES.get(engine)).parameters
    unknown = sorted(k for k in options if k not in params or k == "task")
    if unknown:
        valid = [k for k, p in params.items() if p.kind == p.KEYWORD_ONLY]
        raise ConfigError(f"unknown option(s) {unknown} for SAL engine {engine!r}; valid: {valid}")


def run_sal(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    rt: Runtime,
    engine: str = "fast",
    eps: float = 0.05,
    layers: Sequence[str] | None = None,
    origin: str | None = None,
    origin_loss: float | None = None,
    batch_size: int = 256,
    augment: str = "crop_flip",
    crop_padding: int = 4,
    seed_offsets: Sequence[int] = (7, 0),
    dtype: torch.dtype | None = None,
    precision: str = "fp32",
    **engine_options: Any,
) -> SALResult:
    """Measure SAL of every layer; see :func:`measure_sal` for the arguments.

    Randomness comes only from ``rt.generator(*seed_offsets, ...)``; torch's global RNG state is
    saved and restored, and the model leaves with its weights, modes and ``requires_grad`` flags
    unchanged.
    """
    fn = SAL_ENGINES.get(engine)
    check_engine_options(engine, engine_options)
    if origin is None:
        origin = SAL_ENGINES.meta(engine)["default_origin"]
        if ORIGINS[origin] == "official" and origin_loss is None:
            origin = "exact"
    task = SALTask(
        model, x, y, rt, eps=eps, layers=tuple(layers) if layers is not None else None,
        origin=origin, origin_loss=origin_loss, batch_size=batch_size, augment=augment,
        crop_padding=crop_padding, seed_offsets=tuple(seed_offsets), dtype=dtype,
        precision=precision,
    )
    cuda = [rt.device.index or 0] if rt.device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        result = fn(task, **engine_options)
    result.engine = engine
    if result.details is None:
        result.details = {}
    result.details["origin_kind"] = ORIGINS[origin]
    return result


def measure_sal(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    rt: Runtime,
    engine: str = "fast",
    eps: float = 0.05,
    layers: Sequence[str] | None = None,
    origin: str | None = None,
    origin_loss: float | None = None,
    batch_size: int = 256,
    augment: str = "crop_flip",
    **engine_options: Any,
) -> dict[str, float]:
    """SAL of each layer of ``model`` on ``(x, y)``: ``{layer module path: value ≥ 0}``.

    Args:
        model: a ``torch.fx``-traceable classifier taking images in [0, 1].
        x: training images, uint8 (0..255) or float in [0, 1], N x C x H x W.
        y: int64 labels (N,).
        rt: device and seed (streams ``rt.generator(*seed_offsets, ...)``).
        engine: ``"fast"`` (default) or ``"compat"`` (``SAL_ENGINES.names()``).
        eps: relative radius ε of the ball ‖v‖ ≤ ε‖θ_l‖ (paper: 0.05).
        layers: module paths to measure; default every Conv2d/Linear.
        origin: ``"exact"`` (eval-mode L(θ), measured like the perturbed models) or ``"official"``
            (``origin_loss``, the epoch's running train loss, as the paper code). Default: compat
            uses ``official`` when ``origin_loss`` is given, else ``exact``; fast uses ``exact``.
        origin_loss: the running train loss for the official origin.
        batch_size, augment: the training pipeline the compat engine replays (also
            ``crop_padding``).
        **engine_options: ``seed_offsets``, ``dtype`` (e.g. ``torch.float64``), ``precision``
            (``"fp32"`` or ``"bf16"`` autocast), then engine options: compat ``rounds``, ``lr``;
            fast ``steps``, ``probe_size``, ``eval_size``, ``restarts``, ``chunk_size``,
            ``cache_gb``, ``etas``.
    """
    return run_sal(
        model, x, y, rt=rt, engine=engine, eps=eps, layers=layers, origin=origin,
        origin_loss=origin_loss, batch_size=batch_size, augment=augment, **engine_options,
    ).values


class SALCallback:
    """Per-epoch SAL for ``train.fit(callbacks=[SALCallback(...)])``.

    Measures on the data the model is trained on (``ctx.x_train``, possibly poisoned, as the paper
    does), replays ``ctx.cfg``'s batch size and augmentation (compat), takes ``ctx.train_loss`` as
    the official origin and seeds its streams with ``(7, epoch)``: deterministic, and the training
    RNG, weights and modes are untouched. Returns ``{"sal": {layer: value}, "sal_origin": float,
    "sal_origin_kind": "official"|"exact", "sal_seconds": float, "sal_engine": name}``.

    Args:
        engine: registered SAL engine.
        eps, layers, origin: as in :func:`measure_sal`.
        every: measure every ``every``-th epoch only (1 = every epoch, as the paper).
        dtype, precision: working dtype / ``"bf16"`` autocast (CUDA).
        **engine_options: engine options (checked now).
    """

    def __init__(self, engine: str = "fast", *, eps: float = 0.05,
                 layers: Sequence[str] | None = None, origin: str | None = None, every: int = 1,
                 dtype: torch.dtype | None = None, precision: str = "fp32",
                 **engine_options: Any) -> None:
        check_engine_options(engine, engine_options)
        if origin is not None and origin not in ORIGINS:
            raise ValueError(f"origin must be one of {sorted(ORIGINS)}, got {origin!r}")
        self.engine, self.eps, self.layers, self.origin = engine, eps, layers, origin
        self.every, self.dtype, self.precision = max(1, int(every)), dtype, precision
        self.options = dict(engine_options)

    def __call__(self, ctx: Any) -> dict[str, Any] | None:
        if ctx.epoch % self.every:
            return None
        res = run_sal(
            ctx.model, ctx.x_train, ctx.y_train, rt=ctx.rt, engine=self.engine, eps=self.eps,
            layers=self.layers, origin=self.origin, origin_loss=ctx.train_loss,
            batch_size=ctx.cfg.batch_size, augment=ctx.cfg.augment,
            crop_padding=ctx.cfg.crop_padding, seed_offsets=(7, ctx.epoch), dtype=self.dtype,
            precision=self.precision, **self.options,
        )
        return {"sal": res.values, "sal_origin": res.origin,
                "sal_origin_kind": res.details["origin_kind"], "sal_seconds": res.seconds,
                "sal_engine": self.engine}


def cost_model(forward_macs: float, suffix_macs: Mapping[str, float], *, n_train: int,
               batch_size: int = 256, rounds: int = 10, probe_size: int = 10_000,
               eval_size: int | None = None, steps: int = 5, restarts: int = 0,
               layer_groups: int = 1) -> dict[str, float]:
    """Conv/Linear MACs of one SAL measurement per engine (backward for W_l ≈ suffix MACs S_l).

    official: R·n·Σ_l (4F + 2S_l)  (per layer and round: 2 SGD passes F + S_l, eval 2F);
    compat:   R·n·(2F + 6ΣS)       (one shared clean forward per SGD and eval batch; per layer
              and sign a suffix forward + backward in the SGD pass, a forward in the eval pass);
    fast:     P·(g·F + 2F + 2(2K − 1)ΣS) + P·restarts·2(2K + 1)ΣS + [E]·E·(F + 2ΣS)
              (g clean caching passes, one backward at Δ = 0 for all layers, then per sign K − 1
              suffix gradients and a final forward; ``n`` = images per drop_last pass).
    """
    n = (n_train // batch_size) * batch_size
    total_s = float(sum(suffix_macs.values()))
    layers = len(suffix_macs)
    probe = min(probe_size, n_train)
    fast = probe * (layer_groups * forward_macs + 2 * forward_macs + 2 * (2 * steps - 1) * total_s)
    fast += probe * restarts * 2 * (2 * steps + 1) * total_s
    if eval_size is not None:
        fast += min(eval_size, n_train) * (forward_macs + 2 * total_s)
    return {
        "official": rounds * n * (4 * layers * forward_macs + 2 * total_s),
        "compat": rounds * n * (2 * forward_macs + 6 * total_s),
        "fast": fast,
    }


def count_macs(fn: Any, *args: Any) -> int:
    """Multiply-accumulates of one call (conv/matmul only), via ``FlopCounterMode`` (FLOPs / 2)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn(*args)
    return int(counter.get_total_flops()) // 2


def suffix_macs(plan: SuffixPlan, x: torch.Tensor) -> tuple[int, dict[str, int]]:
    """Per-image MACs of the full forward and of each layer's suffix (its own op included)."""
    n = int(x.shape[0])
    with torch.no_grad():
        _, cache = plan.capture(x)
    forward = count_macs(plan.capture, x) // n
    per_layer = {}
    for name in plan.layers:
        zero = torch.zeros_like(plan.weight(name))
        per_layer[name] = count_macs(plan.suffix, name, zero, cache) // n
    return forward, per_layer
