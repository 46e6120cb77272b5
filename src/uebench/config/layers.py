"""How a run config is made from user input: the layers (dataset recipe, YAML file, flags,
``key=value``), the declared flags, and the one resolver both single- and multi-task runs use."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from uebench.config.sections import RunCfg, canonical
from uebench.data import DATASETS
from uebench.errors import ConfigError
from uebench.registry import Registry
from uebench.utils.typed import from_dict

T = TypeVar("T")


# ----------------------------------------------------------------------------- resolution


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b=value`` -> (["a", "b"], YAML-parsed value)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value (e.g. train.lr=0.05)")
    key, raw = text.split("=", 1)
    if not key.strip():
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def parse_params(items: list[str]) -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` -> ``{"a.b": 1, "c": "x"}`` (attack parameters, engine options)."""
    params: dict[str, Any] = {}
    for item in items:
        path, value = parse_override(item)
        params[".".join(path)] = value
    return params


def _merge(base: dict[str, Any], path: Sequence[str], value: Any) -> None:
    node = base
    for part in path[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            node[part] = nxt
        node = nxt
    node[path[-1]] = value


def _deep_update(base: dict[str, Any], upd: Mapping[str, Any]) -> dict[str, Any]:
    for k, v in upd.items():
        if isinstance(v, Mapping) and isinstance(base.get(k), dict):
            _deep_update(base[k], v)
        else:
            base[k] = v
    return base


def load_yaml(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist (or is not a file)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


@dataclasses.dataclass(frozen=True)
class Flag:
    """A run setting with a short name: a keyword of :func:`resolve_run_cfg`, a grid axis
    (``dataset: [...]``) and, where ``help`` is given, the command-line option ``--<name>``
    (``uebench.commandline.add_flag``). Declared once here, so the three cannot disagree."""

    key: str  # dotted config key, e.g. "data.train_size"
    help: str | None = None  # None: a keyword and grid axis only, no command-line option
    type: Any = str  # how argparse converts the option's text

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(self.key.split("."))


# flags are a layer of their own: above the YAML file, below key=value
RUN_FLAGS: dict[str, Flag] = {
    "dataset": Flag("data.name", "dataset name (uebench datasets)"),
    "data_dir": Flag("data.data_dir", "where the dataset files are ($UEBENCH_DATA)"),
    "train_size": Flag("data.train_size", "stratified seeded training subset", int),
    "test_size": Flag("data.test_size", "stratified seeded test subset", int),
    "model": Flag("model.name", "model name (uebench models)"),
    "width": Flag("model.width"),
    "epochs": Flag("train.epochs", "training epochs (default: the dataset's recipe)", int),
    "seed": Flag("seed", "seed (subsets, data order, init; 0)", int),
    "device": Flag("device", "cpu, cuda, cuda:1 or auto (default)"),
    "poison": Flag("poison", "train on this poison directory"),
    "poison_ratio": Flag("poison_ratio", "share of the training images that take their poisoned "
                                         "version, 0..1 (default 1: all)", float),
    "poison_mix": Flag("poison_mix", "replace (default: protected images replace their clean "
                                     "ones), add (protected copies beside the whole clean set) "
                                     "or drop (the protected images left out: the clean part "
                                     "alone)"),
    "init_seed": Flag("init_seed"),
    "sal_engine": Flag("sal.engine", "SAL engine (default: sal.engine, fast)"),
    "sal_origin": Flag("sal.origin", "official or exact (engine default)"),
    "defense": Flag("defense", "defenses in the order they act: jpeg, jpeg,cutout "
                               "(uebench defenses)"),
}


def flag_paths(flags: Mapping[str, Flag]) -> dict[str, tuple[str, ...]]:
    """Short name -> config key path of each declared flag."""
    return {name: flag.path for name, flag in flags.items()}


FLAG_KEYS = flag_paths(RUN_FLAGS)


def input_layers(
    config_file: str | Path | None, flags: Mapping[str, Any], overrides: Sequence[str],
    flag_keys: Mapping[str, tuple[str, ...]] | None = None,
) -> tuple[dict[str, Any], dict[str, Any], list[tuple[list[str], Any]]]:
    """The user's three layers, parsed: YAML file, flags (CLI names, ``None`` = not given) as
    nested config data via ``flag_keys`` (default :data:`FLAG_KEYS`), and ``key=value``
    overrides as (path, value) pairs."""
    keys = FLAG_KEYS if flag_keys is None else flag_keys
    file_data = load_yaml(config_file) if config_file else {}
    flag_data: dict[str, Any] = {}
    for key, value in flags.items():
        if key not in keys:
            raise TypeError(f"unknown flag {key}")
        if value is not None:
            _merge(flag_data, keys[key], value)
    return file_data, flag_data, [parse_override(o) for o in overrides]


def resolve_layers(
    cls: type[T], recipes: Registry, *, config_file: str | Path | None = None,
    overrides: Sequence[str] = (), flags: Mapping[str, Any] | None = None,
    flag_keys: Mapping[str, tuple[str, ...]] | None = None,
    train_base: Mapping[str, Any] | None = None,
) -> T:
    """The layering every run config is made by (single- and multi-task alike)::

        dataclass defaults < train_base < the dataset's recipe < YAML file < flags < key=value

    ``cls`` is the run-config dataclass (its ``data.name`` default names the dataset when no layer
    does), ``recipes`` the dataset registry whose ``recipe`` metadata holds the dataset's training
    settings, ``flags`` short names of ``flag_keys`` (``None`` = not given).
    """
    file_data, flag_data, parsed = input_layers(config_file, flags or {}, overrides, flag_keys)
    # the recipe belongs to the dataset named by the highest layer that names one
    dataset = cls().data.name  # type: ignore[attr-defined]
    for layer in (file_data, flag_data):
        dataset = (layer.get("data") or {}).get("name", dataset)
    for path, value in parsed:
        if path == ["data", "name"]:
            dataset = value
    recipe = recipes.meta(str(dataset)).get("recipe") or {}
    data: dict[str, Any] = {"train": {**(train_base or {}), **json.loads(json.dumps(recipe))}}
    _deep_update(data, file_data)
    _deep_update(data, flag_data)
    for path, value in parsed:
        _merge(data, path, value)
    return from_dict(cls, data)


def resolve_run_cfg(
    *,
    config_file: str | Path | None = None,
    overrides: Sequence[str] = (),
    **flags: Any,
) -> RunCfg:
    """The one way a :class:`RunCfg` is made from user input (:func:`resolve_layers` with the
    single-task datasets' recipes). ``flags`` uses the short names of :data:`RUN_FLAGS`; ``None``
    means "not given"."""
    return canonical(resolve_layers(RunCfg, DATASETS, config_file=config_file,
                                    overrides=overrides, flags=flags))
