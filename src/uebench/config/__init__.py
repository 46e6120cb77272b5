"""Typed, strict configuration: frozen dataclasses, resolved in ONE place.

A run's config is resolved by :func:`resolve_run_cfg` (multi-task: the same
:func:`resolve_layers`), with this precedence (later wins)::

    dataclass defaults < the dataset's recipe < YAML file (--config) < CLI flags < key=value

The dataset's recipe is registry metadata (``@register_dataset(..., recipe={...})``): the training
settings measured to work for that data. Unknown keys, values of the wrong type, choices outside
a ``Literal`` and impossible numbers (NaN, negative learning rates, ...) raise
:class:`ConfigError` before any compute starts. The same coercer (:func:`coerce`, from
:mod:`uebench.utils.typed`, which the defenses use too) checks attack parameters against the attack
function's type hints.
"""

# the public names, in one place (the sections and the layering are separate modules)
from uebench.config.layers import (
    FLAG_KEYS,
    RUN_FLAGS,
    Flag,
    flag_paths,
    input_layers,
    load_yaml,
    parse_override,
    parse_params,
    resolve_layers,
    resolve_run_cfg,
)
from uebench.config.sections import (
    Augment,
    DataCfg,
    ModelCfg,
    Optimizer,
    Origin,
    PoisonMix,
    Precision,
    RunCfg,
    SalCfg,
    Schedule,
    Switch,
    TrainCfg,
    TrajectoryCfg,
    canonical,
    check_choices,
    check_number,
    config_hash,
    sparse,
    without_poison,
)
from uebench.utils.typed import coerce, from_dict, parse_number, to_dict

__all__ = [
    "FLAG_KEYS", "RUN_FLAGS", "Augment", "DataCfg", "Flag", "ModelCfg", "Optimizer", "Origin",
    "PoisonMix", "Precision", "RunCfg", "SalCfg", "Schedule", "Switch", "TrainCfg",
    "TrajectoryCfg", "canonical", "check_choices", "check_number", "coerce", "config_hash",
    "flag_paths", "from_dict", "input_layers", "load_yaml", "parse_number", "parse_override",
    "parse_params", "resolve_layers", "resolve_run_cfg", "sparse", "to_dict", "without_poison",
]
