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
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from uebench.attacks.base import attack_info, resolve_params
from uebench.bench.tables import LAYOUTS
from uebench.config import FLAG_KEYS, RunCfg, canonical, load_yaml, resolve_run_cfg
from uebench.controls import needed_controls
from uebench.data import load_dataset
from uebench.errors import ConfigError
from uebench.poisons.store import read_manifest

TOP_KEYS = {"name", "description", "table", "base", "grid", "poison_seed", "beta_from", "ci",
            "resources", "retries", "controls"}
VANILLA_NAMES = ("vanilla", "clean")


@dataclasses.dataclass(frozen=True)
class Method:
    """One value of the method axis: clean training, a generated poison or an existing one."""

    name: str
    attack: str | None = None
    preset: str = "original"
    params: tuple[tuple[str, Any], ...] = ()
    path: str | None = None  # an existing poison directory (uebench check --protected)

    @property
    def vanilla(self) -> bool:
        return self.attack is None and self.path is None


VANILLA = Method("vanilla")


@dataclasses.dataclass(frozen=True)
class AxisValue:
    label: str
    overrides: tuple[tuple[str, Any], ...]  # (dotted RunCfg key, value)


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


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested/dotted settings as (dotted key, leaf value) pairs; lists are leaves."""
    out: list[tuple[str, Any]] = []
    for key, value in mapping.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out += flatten(value, path + ".")
        elif not (isinstance(value, Mapping) and not value):
            out.append((path, value))
    return out


def _reject_device(keys: Sequence[str], where: str) -> None:
    if any(k == "device" for k in keys):
        raise ConfigError(f"{where}: 'device' is not a grid setting; the executor assigns devices "
                          "(uebench bench --devices cuda:0,cuda:1, or Ray's num_gpus)")


def parse_method(item: Any) -> Method:
    """``"ops"``, ``"em:classwise"`` (attack:preset) or ``{name, attack, preset, params}``."""
    if isinstance(item, str):
        attack, _, preset = item.partition(":")
        if attack in VANILLA_NAMES:
            return VANILLA
        return Method(name=item.replace(":", "-"), attack=attack, preset=preset or "original")
    if not isinstance(item, Mapping):
        raise ConfigError(f"grid.method: {item!r} is neither a name nor a mapping")
    unknown = sorted(set(item) - {"name", "attack", "preset", "params", "path"})
    if unknown:
        raise ConfigError(f"grid.method: unknown key(s) {unknown}; use name, attack, preset, "
                          "params (or path for an existing poison)")
    params = item.get("params") or {}
    if not isinstance(params, Mapping):
        raise ConfigError(f"grid.method {item!r}: params must be a mapping")
    attack, path = item.get("attack"), item.get("path")
    if (attack is None) == (path is None):
        raise ConfigError(f"grid.method {item!r}: give exactly one of attack or path")
    name = item.get("name") or (attack if attack else Path(str(path)).name)
    return Method(name=str(name), attack=attack, preset=str(item.get("preset", "original")),
                  params=tuple(sorted(params.items())), path=None if path is None else str(path))


def axis_path(axis: str) -> str:
    """The dotted RunCfg key of an axis name (``dataset`` -> ``data.name``)."""
    return ".".join(FLAG_KEYS[axis]) if axis in FLAG_KEYS else axis


def axis_name(key: str) -> str:
    """The short name of a dotted key, where there is one (``data.name`` -> ``dataset``)."""
    for short, path in FLAG_KEYS.items():
        if ".".join(path) == key:
            return short
    return key


def _is_section(path: str) -> bool:
    """Whether a dotted key names a section of :class:`RunCfg` (``train``, ``sal``), not a value."""
    node: Any = RunCfg
    for part in path.split("."):
        if not dataclasses.is_dataclass(node):
            return False
        hints = typing.get_type_hints(node)
        if part not in hints:
            return False
        node = hints[part]
    return dataclasses.is_dataclass(node)


def parse_axis_value(axis: str, value: Any) -> AxisValue:
    path = axis_path(axis)
    if not isinstance(value, Mapping):
        return AxisValue(label=str(value), overrides=((path, value),))
    fields = dict(value)
    label = fields.pop("label", None)
    if "." in path and axis in FLAG_KEYS:  # model: {name, width} sets model.name, model.width
        section = path.rsplit(".", 1)[0]
        overrides = tuple((f"{section}.{k}", v) for k, v in flatten(fields))
        default = fields.get(path.rsplit(".", 1)[1], json.dumps(fields, sort_keys=True))
    elif _is_section(path):  # train: {optimizer, lr} sets those keys, the rest stays as in base
        overrides = tuple((f"{path}.{k}", v) for k, v in flatten(fields))
        default = json.dumps(fields, sort_keys=True)
    else:  # a mapping-valued key (e.g. sal.options)
        overrides = ((path, fields),)
        default = json.dumps(fields, sort_keys=True)
    _reject_device([k for k, _ in overrides], f"grid.{axis}")
    return AxisValue(label=str(label if label is not None else default), overrides=overrides)


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
    _reject_device([k for k, _ in items], "base")
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
            _reject_device([axis_path(axis)], f"grid.{axis}")
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
