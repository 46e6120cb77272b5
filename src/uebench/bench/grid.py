"""Grid files: fixed settings plus axes, expanded into one resolved training run per cell and seed.

A grid YAML (``uebench bench GRID.yaml``; examples in ``experiments/``)::

    name: table1-cpu          # the grid's folder under --out (default: the file name)
    table: table1             # report layout: table1 | table2 | table3 | long (bench.tables)
    base:                     # fixed settings: RunCfg keys, nested or dotted (or a YAML file path)
      data: {name: fashion-mnist, train_size: 2000, test_size: 2000}
      model: {name: resnet18, width: 0.125}
      train.epochs: 10
    grid:                     # axes; the product of their values is the grid
      method: [ops, em:classwise, {name: lsp7, attack: lsp, params: {patch_size: 7}}]
      defense: [none, jpeg]   # shorthands: dataset, model, defense, seed, epochs, width, ...
      model: [resnet18, {label: vit-s, name: vit, width: 0.5}]   # a mapping sets several keys
      train.lr: [0.1, 0.05]   # any RunCfg key
      poison_ratio: [1.0, 0.5]  # share of the images poisoned (docs/bench.md, partial poisoning)
      seed: [0, 1]            # replicates: tables give mean ± std and a 95 % interval over these
    poison_seed: 0            # every poison's subset + generation seed (runs vary init/order only)
    beta_from: undefended     # defended cells take β from the undefended clean run (paper Table 2)
    ci: bootstrap             # interval over seeds: bootstrap (percentile) or t
    resources: {poison: {cpus: 1, gpus: 0}, train: {cpus: 1, gpus: 0}}
    retries: 2                # re-runs of a job whose worker died
    controls: true            # add random noise at each poison's budget (uebench.controls)

Every cell's ``RunCfg`` is made by :func:`uebench.config.resolve_run_cfg` (dataset recipe < base <
axis values), with SAL switched on and ``data.subset_seed`` fixed to ``poison_seed`` so that every
seed trains on the images the poisons were made from. ``device`` is not a grid setting: the
executor assigns devices (``--devices``, Ray ``num_gpus``). The method axis always starts with
``vanilla`` (clean training), which every UD needs.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from uebench.bench.axes import (
    VANILLA,
    AxisValue,
    Method,
    axis_name,
    axis_path,
    flatten,
    parse_axis_value,
    parse_method,
    reject_device,
)
from uebench.bench.grid_controls import control_methods
from uebench.bench.tables import LAYOUTS
from uebench.config import RunCfg, canonical, load_yaml, resolve_run_cfg
from uebench.errors import ConfigError

TOP_KEYS = {"name", "description", "table", "base", "grid", "poison_seed", "beta_from", "ci",
            "resources", "retries", "controls"}


@dataclasses.dataclass(frozen=True)
class Grid:
    name: str
    base: tuple[tuple[str, Any], ...]  # dotted RunCfg key -> value
    axes: tuple[tuple[str, tuple[AxisValue, ...]], ...]  # without method and seed
    methods: tuple[Method, ...]
    seeds: tuple[int, ...] = (0,)
    poison_seed: int = 0
    beta_from: str = "undefended"
    table: str = "long"
    ci: str = "bootstrap"
    resources: Mapping[str, Mapping[str, float]] = dataclasses.field(default_factory=dict)
    retries: int = 2
    controls: bool = True  # a random-noise control per poison budget was added to the methods


@dataclasses.dataclass(frozen=True)
class Cell:
    """One training run of the grid: a method in a setting (axis labels) with one seed."""

    method: Method
    setting: tuple[tuple[str, str], ...]  # (axis name, value label), in axis order
    seed: int
    cfg: RunCfg


# ----------------------------------------------------------------------------- parsing


def _base(data: Any, source: Path | None) -> tuple[tuple[str, Any], ...]:
    if data is None:
        return ()
    if isinstance(data, str):
        path = Path(data)
        if source is not None and not path.is_absolute():
            path = source.parent / path
        data = load_yaml(path)
    if not isinstance(data, Mapping):
        raise ConfigError("base must be a mapping of RunCfg keys (or a YAML file path)")
    items = flatten(data)
    reject_device([k for k, _ in items], "base")
    return tuple(items)


def _choice(data: Mapping[str, Any], key: str, choices: Sequence[str], default: str) -> str:
    value = data.get(key, default)
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}; got {value!r}")
    return str(value)


def _int(data: Mapping[str, Any], key: str, default: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{key} must be an integer >= 0, got {value!r}")
    return value


def _resources(data: Any) -> dict[str, dict[str, float]]:
    """``{poison|train: {cpus, gpus}}`` with non-negative numbers."""
    if not isinstance(data, Mapping):
        raise ConfigError("resources must map a job kind (poison, train) to {cpus, gpus}")
    out: dict[str, dict[str, float]] = {}
    for kind, request in data.items():
        if kind not in ("poison", "train") or not isinstance(request, Mapping) \
                or not set(request) <= {"cpus", "gpus"}:
            raise ConfigError(f"resources.{kind}: expected poison|train: {{cpus: N, gpus: N}}")
        for key, value in request.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"resources.{kind}.{key} must be a number >= 0, got {value!r}")
        out[str(kind)] = {k: float(v) for k, v in request.items()}
    return out


def grid_from_dict(data: Mapping[str, Any], *, name: str = "grid",
                   source: Path | None = None) -> Grid:
    """A :class:`Grid` from a parsed grid file; unknown keys and bad values raise ConfigError."""
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise ConfigError(f"unknown grid key(s) {unknown}; valid: {', '.join(sorted(TOP_KEYS))}")
    grid_name = str(data.get("name") or name)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", grid_name) or grid_name.startswith("."):
        raise ConfigError(f"grid name {grid_name!r} must be letters, digits, '_', '.', '-' "
                          "(it names the grid's folder)")
    axes_in = data.get("grid") or {}
    if not isinstance(axes_in, Mapping):
        raise ConfigError("grid must be a mapping of axis -> list of values")
    methods, seeds, axes = [VANILLA], [0], []
    for axis, values in axes_in.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"grid.{axis} must be a non-empty list")
        if axis == "method":
            methods += [m for m in map(parse_method, values) if not m.vanilla]
        elif axis == "seed":
            seeds = [_int({"seed": v}, "seed", 0) for v in values]
        else:
            reject_device([axis_path(axis)], f"grid.{axis}")
            axes.append((axis_name(axis_path(axis)),
                         tuple(parse_axis_value(axis, v) for v in values)))
    names = [m.name for m in methods]
    if len(set(names)) != len(names):
        raise ConfigError(f"grid.method names must be unique, got {names}; give each a name:")
    controls = data.get("controls", True)
    if not isinstance(controls, bool):
        raise ConfigError(f"controls must be true (a random-noise control at each poison's "
                          f"budget, the default) or false, got {controls!r}")
    if controls:
        base = _base(data.get("base"), source)
        methods += control_methods(methods, base, axes)
    return Grid(
        name=grid_name, base=_base(data.get("base"), source),
        axes=tuple(axes), methods=tuple(methods), seeds=tuple(dict.fromkeys(seeds)),
        poison_seed=_int(data, "poison_seed", 0),
        beta_from=_choice(data, "beta_from", ("undefended", "defended"), "undefended"),
        table=_choice(data, "table", LAYOUTS.names(), "long"),
        ci=_choice(data, "ci", ("bootstrap", "t"), "bootstrap"),
        resources=_resources(data.get("resources") or {}),
        retries=_int(data, "retries", 2), controls=controls,
    )


def load_grid(path: Path | str, *, controls: bool | None = None) -> Grid:
    """Read and check a grid YAML file; ``controls`` overrides the file's ``controls`` key."""
    path = Path(path)
    data = dict(load_yaml(path))
    if controls is not None:
        data["controls"] = controls
    return grid_from_dict(data, name=path.stem, source=path)


# ----------------------------------------------------------------------------- expansion


def _value_text(value: Any) -> str:
    return json.dumps(value)  # JSON is YAML: the config path parses it back unchanged


def resolve_cell_cfg(grid: Grid, overrides: Sequence[tuple[str, Any]], seed: int) -> RunCfg:
    """The RunCfg of one cell through the one config path (recipe < base < axes)."""
    items = [*grid.base, *overrides, ("seed", seed), ("sal.enabled", True)]
    cfg = resolve_run_cfg(overrides=[f"{k}={_value_text(v)}" for k, v in items])
    if cfg.data.subset_seed is None:  # every seed trains on the poisons' images
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(
            cfg.data, subset_seed=grid.poison_seed))
    return canonical(cfg)


def expand(grid: Grid) -> list[Cell]:
    """Every (setting, method, seed) of the grid with its resolved config (errors before work)."""
    names = [a for a, _ in grid.axes]
    cells = []
    for combo in itertools.product(*(values for _, values in grid.axes)):
        overrides = [o for value in combo for o in value.overrides]
        setting = tuple(zip(names, (v.label for v in combo)))
        for seed in grid.seeds:
            cfg = resolve_cell_cfg(grid, overrides, seed)
            cells += [Cell(m, setting, seed, cfg) for m in grid.methods]
    return cells
