"""Sharpness-Aware Learnability (SAL): public API, the per-epoch callback and the cost model.

SAL (Ye et al., *How Far Are We From True Unlearnability?*, ICLR 2025, arXiv:2509.08058, Eq. 3)
of layer ``l`` = the largest change of the training loss when only that layer's weight moves inside
the ball ‖v‖ ≤ ε‖θ_l‖ (relative, as the official code), other layers frozen, BatchNorm in eval
mode. A layer is every ``nn.Conv2d``/``nn.Linear`` weight, named by module path
(:func:`uebench.models.base.layer_names`). Engines register themselves in ``SAL_ENGINES``
(:mod:`.engines`, re-exported here) with their metadata (docs/sal.md):

- ``fast`` (default): full-batch projected gradient search on a probe subset, scored on held-out
  images; follows the definition. Its UD is a definition-faithful number, not the paper's.
- ``compat``: the official optimiser semantics (SGD lr 0.1, 10 rounds over the replayed training
  pipeline, official origin), run in lockstep; for paper parity.
- ``reference``: the official loop written plainly; a test oracle (``oracle=True``).

``measure_sal`` returns ``{layer: SAL}`` (floats ≥ 0); ``run_sal`` the full :class:`SALResult`;
``SALCallback`` plugs into ``train.fit`` and measures after every epoch.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from uebench.errors import ConfigError

# importing the engine modules registers them (fast, compat, reference)
from uebench.learnability import compat as _compat  # noqa: F401
from uebench.learnability import fast as _fast  # noqa: F401
from uebench.learnability import reference as _reference  # noqa: F401
from uebench.learnability.engines import SAL_ENGINES, EngineFn  # noqa: F401  (public here)
from uebench.learnability.fast import DEFAULT_EVAL, DEFAULT_PROBE, DEFAULT_STEPS
from uebench.learnability.suffix import SuffixPlan
from uebench.learnability.task import ORIGINS, SALData, SALResult, SALTask, SampleLoss
from uebench.runtime import Runtime
from uebench.train.classification import official_running_loss  # noqa: F401  (public here)
from uebench.train.run import RUN_CALLBACKS, defense_pipeline

DataSpec = Any  # SALData, or a TrainCfg-like object (batch_size, augment, crop_padding, drop_last)


def check_engine_options(engine: str, options: Mapping[str, Any]) -> None:
    """Raise ``ConfigError`` now (not after an epoch of training) for an unknown engine option."""
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
    data: DataSpec,
    engine: str = "fast",
    eps: float = 0.05,
    layers: Sequence[str] | None = None,
    origin: str | None = None,
    origin_loss: float | None = None,
    seed_offsets: Sequence[int] = (7, 0),
    dtype: torch.dtype | None = None,
    precision: str = "fp32",
    loss: SampleLoss | None = None,
    **engine_options: Any,
) -> SALResult:
    """Measure SAL of every layer; see :func:`measure_sal` for the arguments.

    ``loss``: per-sample training loss ``loss(outputs, targets) -> (M,)`` (``y`` then holds the
    targets it reads, e.g. per-pixel labels); ``None`` = cross-entropy on labels ``y``.

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
        model, x, y, rt, SALData.coerce(data), eps=eps,
        layers=tuple(layers) if layers is not None else None, origin=origin,
        origin_loss=origin_loss, seed_offsets=tuple(seed_offsets), dtype=dtype,
        precision=precision, loss=loss,
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
    data: DataSpec,
    engine: str = "fast",
    eps: float = 0.05,
    layers: Sequence[str] | None = None,
    origin: str | None = None,
    origin_loss: float | None = None,
    **engine_options: Any,
) -> dict[str, float]:
    """SAL of each layer of ``model`` on ``(x, y)``: ``{layer module path: value ≥ 0}``.

    Args:
        model: a ``torch.fx``-traceable classifier taking images in [0, 1].
        x: training images, uint8 (0..255) or float in [0, 1], N x C x H x W.
        y: int64 labels (N,).
        rt: device and seed (streams ``rt.generator(*seed_offsets, ...)``).
        data: the training data pipeline (required, no silent default): a :class:`SALData`,
            ``SALData.official()`` (the paper's) or the run's ``TrainCfg``. compat/reference
            replay it; fast records it but searches on un-augmented images.
        engine: a registered engine (``SAL_ENGINES.names()``; default ``"fast"``).
        eps: relative radius ε of the ball ‖v‖ ≤ ε‖θ_l‖ (paper: 0.05).
        layers: module paths to measure; default every Conv2d/Linear.
        origin: ``"exact"`` (eval-mode L(θ), measured like the perturbed models) or ``"official"``
            (``origin_loss``, the epoch's running train loss, as the paper code). Default: the
            engine's ``default_origin`` metadata; ``official`` falls back to ``exact`` without
            ``origin_loss``.
        origin_loss: the running train loss for the official origin
            (:func:`official_running_loss`).
        **engine_options: ``seed_offsets``, ``dtype`` (e.g. ``torch.float64``), ``precision``
            (``"fp32"`` or ``"bf16"`` autocast), ``loss`` (per-sample loss, see
            :func:`run_sal`; default cross-entropy), then engine options: compat/reference
            ``rounds``, ``lr``; fast ``steps``, ``probe_size``, ``eval_size``, ``restarts``,
            ``chunk_size``, ``cache_gb``, ``etas``.
    """
    return run_sal(
        model, x, y, rt=rt, data=data, engine=engine, eps=eps, layers=layers, origin=origin,
        origin_loss=origin_loss, **engine_options,
    ).values


class SALCallback:
    """Per-epoch SAL for ``train.fit(callbacks=[SALCallback(...)])``.

    Measures on the data the model is trained on (``ctx.x_train``, possibly poisoned, as the paper
    does), replays ``ctx.cfg``'s pipeline (``SALData.from_train_cfg``: batch size, augmentation,
    crop padding, drop_last), takes the official origin from ``ctx.batch_losses``/
    ``ctx.batch_sizes`` by :func:`official_running_loss` when the context has them (else
    ``ctx.train_loss``) and seeds its streams with ``(7, epoch)``: deterministic, and the training
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
            raise ConfigError(f"origin must be one of {sorted(ORIGINS)}, got {origin!r}")
        self.engine, self.eps, self.layers, self.origin = engine, eps, layers, origin
        self.every, self.dtype, self.precision = max(1, int(every)), dtype, precision
        self.options = dict(engine_options)

    def __call__(self, ctx: Any) -> dict[str, Any] | None:
        if ctx.epoch % self.every:
            return None
        res = run_sal(
            ctx.model, ctx.x_train, ctx.y_train, rt=ctx.rt, data=SALData.from_train_cfg(ctx.cfg),
            engine=self.engine, eps=self.eps, layers=self.layers, origin=self.origin,
            origin_loss=epoch_origin_loss(ctx), seed_offsets=(7, ctx.epoch), dtype=self.dtype,
            precision=self.precision, **self.options,
        )
        return {"sal": res.values, "sal_origin": res.origin,
                "sal_origin_kind": res.details["origin_kind"], "sal_seconds": res.seconds,
                "sal_engine": self.engine}


@RUN_CALLBACKS.register("sal", description="SAL after every epoch (the run's sal: section)")
def run_callbacks(cfg: Any) -> list[SALCallback]:
    """The per-epoch SAL measurement a run's ``cfg.sal`` asks for (``train_run`` calls it through
    :data:`uebench.train.run.RUN_CALLBACKS` when ``sal.enabled``)."""
    kwargs = dict(cfg.sal.options)
    if cfg.sal.origin is not None:
        kwargs["origin"] = cfg.sal.origin
    if defense_pipeline(cfg).official_origin == "eval":
        # under MixUp/CutMix the official code's origin is an eval-mode pass over the SAL data,
        # i.e. the exact origin (docs/sal.md, "The origin")
        kwargs["origin"] = "exact"
    return [SALCallback(engine=cfg.sal.engine, eps=cfg.sal.eps, **kwargs)]


def epoch_origin_loss(ctx: Any) -> float:
    """The official origin of an epoch: :func:`official_running_loss` of the context's
    ``batch_losses``/``batch_sizes`` when fit() recorded them, else its ``train_loss``."""
    means, sizes = getattr(ctx, "batch_losses", None), getattr(ctx, "batch_sizes", None)
    if means and sizes:
        return official_running_loss(means, sizes)
    return float(ctx.train_loss)


def cost_model(forward_macs: float, suffix_macs: Mapping[str, float], *, n_train: int,
               batch_size: int = 256, drop_last: bool = True, rounds: int = 10,
               probe_size: int | None = DEFAULT_PROBE,
               eval_size: int | str | None = DEFAULT_EVAL, steps: int = DEFAULT_STEPS,
               restarts: int = 0, layer_groups: int = 1) -> dict[str, float]:
    """Conv/Linear MACs of one SAL measurement per engine (backward for W_l ≈ suffix MACs S_l).

    official: R·n·Σ_l (4F + 2S_l)  (per layer and round: 2 SGD passes F + S_l, eval 2F);
    compat:   R·n·(2F + 6ΣS)       (one shared clean forward per SGD and eval batch; per layer
              and sign a suffix forward + backward in the SGD pass, a forward in the eval pass);
    fast:     P·(g·F + 2F + 2(2K − 1)ΣS) + P·restarts·2(2K + 1)ΣS + E·(F + 2ΣS)
              (g clean caching passes, one backward at Δ = 0 for all layers, then per sign K − 1
              suffix gradients and a final forward; E = held-out scoring images as
              ``scoring.split_probe``: 0 when scored on the probe).
    ``n`` = images per pass (``drop_last``: whole batches only). ``probe_size`` None = all.
    The fast defaults are the engine's (``fast.DEFAULT_*``).
    """
    n = (n_train // batch_size) * batch_size if drop_last else n_train
    total_s = float(sum(suffix_macs.values()))
    layers = len(suffix_macs)
    probe = n_train if probe_size is None else min(probe_size, n_train)
    fast = probe * (layer_groups * forward_macs + 2 * forward_macs + 2 * (2 * steps - 1) * total_s)
    fast += probe * restarts * 2 * (2 * steps + 1) * total_s
    if eval_size is None or probe == n_train:
        scored = 0
    else:  # held-out images (scoring.split_probe): at most every image outside the probe
        scored = n_train - probe if eval_size == "all" else min(int(eval_size), n_train - probe)
    fast += scored * (forward_macs + 2 * total_s)
    return {
        "official": rounds * n * (4 * layers * forward_macs + 2 * total_s),
        "compat": rounds * n * (2 * forward_macs + 6 * total_s),
        "fast": fast,
    }


def training_epoch_macs(forward_macs: float, n_train: int) -> float:
    """MACs of one training epoch, forward + backward ≈ 3F per image (the cost unit of
    benchmarks/README.md: paper scale 3 × 555,422,720 × 50,000)."""
    return 3.0 * forward_macs * n_train


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
