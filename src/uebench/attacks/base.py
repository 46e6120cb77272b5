"""Attack contract, registry, budgets and projections.

Every unlearnable-example generator is one function in its own file::

    @register_attack("em", norm="linf", eps_param="eps", presets={...}, surrogate=True,
                     description="...", paper="Huang et al., ICLR 2021, arXiv 2101.04898")
    def em(x, y, *, num_classes, rt, workdir=None, eps=8/255, ...) -> torch.Tensor

- ``x``: clean training images, float32 in [0, 1], N x C x H x W (on ``rt.device``).
- ``y``: int64 labels (N,); ``num_classes``: number of classes of the dataset.
- ``rt``: :class:`~uebench.runtime.Runtime` (device, seed, progress).
- ``workdir``: a directory for checkpoints of long generations (resume), or ``None``.
- hyperparameters are keyword-only with the ``original`` preset's values as defaults.
- returns ``delta`` shaped like ``x`` with ``x + delta`` in [0, 1] and ``delta`` inside the declared
  budget (``norm`` in ``linf``, ``l2``, ``l0`` or ``None``; radius = the ``eps_param`` argument).
- an attack whose presets use different norms (HYPO: L2 in ``original``, linf in ``apbench``)
  registers ``norm_param="norm"``: the budget norm is then that argument's value
  (:meth:`AttackInfo.norm_for`), and ``norm`` is its default.

Surrogate models are trained with :func:`uebench.train.fit` (no private training loops).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from uebench.config import coerce
from uebench.errors import ConfigError
from uebench.poisons.budget import (  # noqa: F401 (re-exported for attack modules)
    NORMS,
    clamp_to_image,
    enforce_budget,
    measure,
    project_l2,
    project_linf,
)
from uebench.registry import Registry
from uebench.runtime import Runtime

AttackFn = Callable[..., torch.Tensor]
ATTACKS: Registry[AttackFn] = Registry("attack")


@dataclass(frozen=True)
class AttackInfo:
    """Registry metadata of one attack."""

    name: str
    norm: str | None
    eps_param: str | None
    presets: Mapping[str, Mapping[str, Any]]
    surrogate: bool
    description: str
    paper: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    norm_param: str | None = None
    # radius used when the eps parameter is left at None, from the image shape (C, H, W)
    eps_for_shape: Callable[[tuple[int, int, int]], float] | None = None
    # the hyperparameters' type hints: overrides are checked against them before any compute
    hints: Mapping[str, Any] = field(default_factory=dict)
    # small settings for the registry-driven contract tests (seconds on 64 tiny images)
    test_params: Mapping[str, Any] = field(default_factory=dict)

    def norm_for(self, params: Mapping[str, Any]) -> str | None:
        """The budget norm of a run with these resolved parameters."""
        if self.norm_param is None:
            return self.norm
        norm = params.get(self.norm_param, self.defaults.get(self.norm_param))
        if norm not in NORMS:
            raise ConfigError(
                f"attack {self.name}: {self.norm_param} must be one of {NORMS}, got {norm!r}"
            )
        return norm


_NOT_PARAMS = ("rt", "workdir", "num_classes")


def register_attack(
    name: str,
    *,
    norm: str | None,
    eps_param: str | None = "eps",
    presets: Mapping[str, Mapping[str, Any]] | None = None,
    surrogate: bool = False,
    description: str,
    paper: str = "",
    norm_param: str | None = None,
    eps_for_shape: Callable[[tuple[int, int, int]], float] | None = None,
    test_params: Mapping[str, Any] | None = None,
) -> Callable[[AttackFn], AttackFn]:
    """Register an attack; ``presets['original']`` is implied by the function's defaults.

    ``norm_param`` names a parameter that selects the budget norm per run (its default must equal
    ``norm``); without it the norm is fixed. ``eps_for_shape`` gives the radius for an image shape
    when the eps parameter's default is ``None`` (e.g. LSP's 6/255-equivalent L2 radius).
    ``test_params`` are small settings the contract tests run every attack with. Presets and test
    parameters are type-checked here, at import time.
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}")

    def deco(fn: AttackFn) -> AttackFn:
        info = attack_spec(name, fn, norm=norm, eps_param=eps_param, presets=presets,
                           surrogate=surrogate, description=description, paper=paper,
                           norm_param=norm_param, eps_for_shape=eps_for_shape,
                           test_params=test_params)
        ATTACKS.register(name, info=info)(fn)
        return fn

    return deco


def attack_spec(
    name: str, fn: Callable[..., Any], *, norm: str | None, eps_param: str | None = "eps",
    presets: Mapping[str, Mapping[str, Any]] | None = None, surrogate: bool = False,
    description: str, paper: str = "", norm_param: str | None = None,
    eps_for_shape: Callable[[tuple[int, int, int]], float] | None = None,
    test_params: Mapping[str, Any] | None = None,
    not_params: tuple[str, ...] = _NOT_PARAMS,
) -> AttackInfo:
    """An attack's :class:`AttackInfo` from its function: the keyword-only parameters with
    defaults (except ``not_params``, what the caller passes) are its hyperparameters, their type
    hints check every override. Presets and test parameters are type-checked here (``ValueError``,
    a programming error). The one place an attack's parameters are declared, for
    :func:`register_attack` and for the multi-task attacks alike."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}")
    sig = inspect.signature(fn)
    all_hints = typing.get_type_hints(fn)
    defaults = {
        k: p.default
        for k, p in sig.parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
        and p.default is not inspect.Parameter.empty
        and k not in not_params
    }
    hints = {k: all_hints.get(k, Any) for k in defaults}
    all_presets = {"original": {}, **(presets or {})}
    info = AttackInfo(
        name, norm, eps_param, all_presets, surrogate, description, paper, defaults, norm_param,
        eps_for_shape, hints, dict(test_params or {}),
    )
    for pname, params in [*all_presets.items(), ("test_params", info.test_params)]:
        _coerce_params(info, params, f"preset {pname}", exc=ValueError)
    if norm_param is not None and defaults.get(norm_param) != norm:
        raise ValueError(f"attack {name}: default of {norm_param} must be {norm!r}")
    for params in all_presets.values():
        info.norm_for(params)
    return info


def attack_info(name: str) -> AttackInfo:
    return ATTACKS.meta(name)["info"]


def _coerce_params(info: AttackInfo, params: Mapping[str, Any], where: str,
                   exc: type[Exception] = ConfigError) -> dict[str, Any]:
    """Parameters checked and converted with the config coercer, from the function's hints."""
    out = {}
    for key, value in params.items():
        if key not in info.defaults:
            raise exc(
                f"attack {info.name} ({where}) has no parameter {key!r}. "
                f"Parameters: {', '.join(sorted(info.defaults))}"
            )
        try:
            out[key] = coerce(f"attack {info.name}: {key}", value, info.hints[key])
        except ConfigError as err:
            raise exc(str(err)) from None
    return out


def resolve_params(
    name: str | AttackInfo, preset: str = "original",
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Defaults < preset < overrides, each override checked against the function's type hints.
    ``name``: a registered attack, or the :class:`AttackInfo` of one registered elsewhere (the
    multi-task attacks)."""
    info = attack_info(name) if isinstance(name, str) else name
    if preset not in info.presets:
        raise ConfigError(
            f"attack {info.name} has no preset {preset!r}; presets: {', '.join(info.presets)}"
        )
    params = dict(info.defaults)
    params.update(info.presets[preset])
    params.update(_coerce_params(info, overrides or {}, "override"))
    info.norm_for(params)  # a bad norm fails here, before any compute
    return params


def fill_shape_defaults(
    name: str, resolved: Mapping[str, Any], image_shape: tuple[int, ...]
) -> dict[str, Any]:
    """Resolved parameters with a size-dependent radius filled in (the value the run declares)."""
    info = attack_info(name)
    out = dict(resolved)
    if info.eps_param and out.get(info.eps_param) is None and info.eps_for_shape is not None:
        c, h, w = (int(v) for v in image_shape)
        out[info.eps_param] = float(info.eps_for_shape((c, h, w)))
    return out


def run_attack(
    name: str,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    num_classes: int,
    rt: Runtime,
    preset: str = "original",
    params: Mapping[str, Any] | None = None,
    workdir: Path | None = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Run a registered attack; returns ``(delta, resolved_params)`` with the budget enforced."""
    fn = ATTACKS.get(name)
    resolved = fill_shape_defaults(name, resolve_params(name, preset, params), tuple(x.shape[1:]))
    xf = x.float().div(255.0) if x.dtype == torch.uint8 else x.float()
    xf = xf.to(rt.device)
    delta = fn(xf, y.to(rt.device), num_classes=num_classes, rt=rt, workdir=workdir, **resolved)
    info = attack_info(name)
    eps = resolved.get(info.eps_param) if info.eps_param else None
    delta = enforce_budget(xf, delta.to(xf.device).float(), info.norm_for(resolved), eps)
    return delta, resolved
