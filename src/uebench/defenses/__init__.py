"""Defenses against unlearnable examples (paper Table 2 and APBench's set).

``DefensePipeline.from_spec("jpeg,cutout")`` builds an ordered, validated combination with
``prepare`` (dataset transforms, once) and ``batch_loss`` (the training step); ``DEFENSES.names()``
lists every registered defense and ``defense_info(name)`` its metadata. docs/defenses.md has the
table of defaults, sources, pipeline positions and official SAL origins.
"""

from uebench.defenses import (  # noqa: F401 (registers)
    adversarial,
    bdr,
    blur,
    cutmix,
    cutout,
    grayscale,
    jpeg,
    mixup,
    ueraser,
)
from uebench.defenses.base import (
    DEFENSES,
    KINDS,
    ORIGINS,
    BatchDefense,
    DatasetDefense,
    Defense,
    DefenseInfo,
    LossDefense,
    Mixed,
    Targets,
    build_defense,
    defense_info,
    per_sample_ce,
    register_defense,
)
from uebench.defenses.pipeline import DefensePipeline, parse_spec

get_defense = build_defense  # the public name, like get_model

__all__ = [
    "DEFENSES", "KINDS", "ORIGINS", "BatchDefense", "DatasetDefense", "Defense", "DefenseInfo",
    "DefensePipeline", "LossDefense", "Mixed", "Targets", "build_defense", "defense_info",
    "get_defense", "parse_spec", "per_sample_ce", "register_defense",
]
