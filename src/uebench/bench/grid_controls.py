"""The random-noise controls a grid adds: one at each poison's budget that it does not list
already (:mod:`uebench.controls`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from uebench.attacks.base import attack_info, resolve_params
from uebench.bench.axes import Method
from uebench.controls import needed_controls
from uebench.data import load_dataset
from uebench.errors import ConfigError
from uebench.poisons.manifest import read_manifest


def _budget_manifest(method: Method, base: Sequence[tuple[str, Any]],
                     axes: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """A method's budget in the shape of a poison manifest (what the control rule reads)."""
    if method.path is not None:
        return read_manifest(Path(method.path))
    assert method.attack is not None
    info = attack_info(method.attack)
    params = resolve_params(method.attack, method.preset, dict(method.params))
    norm = info.norm_for(params)
    eps = params.get(info.eps_param) if info.eps_param else None
    if eps is None and info.eps_for_shape is not None:
        shape = _image_shape(method, base, axes)
        eps = None if shape is None else info.eps_for_shape(shape)
    # an l0 attack without a radius parameter (OPS) changes one pixel per image
    return {"attack": method.attack, "params": params, "budget": {"norm": norm, "eps": eps},
            "measured": {"l0_max": 1.0}, "dataset": "", "n": 0, "seed": 0}


def _image_shape(method: Method, base: Sequence[tuple[str, Any]],
                 axes: Sequence[tuple[str, Any]]) -> tuple[int, int, int] | None:
    """The image shape of the grid's one dataset (a size-dependent radius such as LSP's);
    ``None`` (with a warning: that poison gets no control) when the grid varies the dataset."""
    import warnings

    if any(o[0] in ("data.name", "data.data_dir") for _, values in axes for v in values
           for o in v.overrides):
        warnings.warn(f"controls: {method.name}'s radius depends on the image size and the grid "
                      "varies the dataset, so no control is added for it; run one grid per "
                      "dataset, or list its control per dataset (a method {name, attack: random, "
                      "params: {norm: l2, eps: RADIUS}})", UserWarning, stacklevel=2)
        return None
    settings = dict(base)
    name = settings.get("data.name")
    if not name:
        raise ConfigError("controls: base needs data.name to size the controls' radii")
    split = load_dataset(str(name), data_dir=settings.get("data.data_dir"), train_size=20,
                         test_size=10, seed=0)
    return split.train.image_shape


def control_methods(methods: Sequence[Method], base: Sequence[tuple[str, Any]],
                    axes: Sequence[tuple[str, Any]]) -> list[Method]:
    """A random-noise control at each poison's budget that the grid does not already have
    (:mod:`uebench.controls`: ℓ∞ at the poison's ε, ℓ2 at its radius, random pixels for ℓ0)."""
    manifests = [_budget_manifest(m, base, axes) for m in methods if not m.vanilla]
    taken = {m.name for m in methods}
    out = []
    for c in needed_controls(manifests)[0]:
        name = c["name"] if c["name"] not in taken else f"{c['name']}-control"
        taken.add(name)
        out.append(Method(name=name, attack="random", params=tuple(sorted(c["params"].items()))))
    return out
