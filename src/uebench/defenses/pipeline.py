"""An ordered, validated combination of defenses: what ``fit()`` and the run config need.

Spec strings (CLI ``--defense``, YAML ``defense:``), ordered, comma-separated; parameters follow
the name after colons, values parsed as YAML scalars (``8/255`` is read as a fraction, ``none``
as None)::

    "jpeg,cutout"                         # jpeg(q=10)+cutout(16)
    "jpeg:quality=20,ueraser-max:jpeg=true"
    "at:eps=4/255:steps=5"
    ""  or  "none"                        # no defense

A list is accepted too (YAML), each item a spec string of one defense or a mapping
``{name: at, eps: 4/255}``; :meth:`DefensePipeline.to_config` writes that form with every
parameter resolved (store it in the run config), :meth:`DefensePipeline.spec` the short string.

Validated up front (:class:`~uebench.errors.ConfigError`, or
:class:`~uebench.errors.UnknownNameError` for a name): unknown keys, wrong types, out-of-range
values, a defense named twice, dataset transforms after batch ones or anything after the
loss-defining defense (write them in the order they act), two loss-defining defenses
(``at``, ``at-l2``, ``ueraser*``), two mixing defenses (``mixup``, ``cutmix``), and a mixing
defense with a loss-defining one (no reference implementation combines them, and their official
SAL origins differ).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import yaml
from torch import nn

from uebench.defenses.base import (
    BatchDefense,
    DatasetDefense,
    Defense,
    LossDefense,
    Targets,
    build_defense,
    check_images,
    defense_info,
    per_sample_ce,
)
from uebench.errors import ConfigError, UebenchError
from uebench.runtime import derive_seed

Spec = str | Sequence[str | Mapping[str, Any]] | None
_STAGES = ((DatasetDefense, "a dataset transform"), (BatchDefense, "a batch transform"),
           (LossDefense, "the loss-defining defense"))


def _stage(defense: Defense) -> int:
    return next(i for i, (base, _) in enumerate(_STAGES) if isinstance(defense, base))


def _value(key: str, raw: str) -> Any:
    if raw.strip().lower() in ("none", "null", "~"):
        return None
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        raise ConfigError(f"defense parameter {key}: cannot read value {raw!r}") from None


def _parse_item(item: str | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``"name:key=value:..."`` or ``{"name": ..., key: value}`` -> (name, params)."""
    if isinstance(item, Mapping):
        params = dict(item)
        name = params.pop("name", None)
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a defense mapping needs a 'name' key, got {dict(item)}")
        return name, params
    if not isinstance(item, str):
        raise ConfigError(f"a defense is a string or a mapping, got {item!r}")
    name, *parts = [p.strip() for p in item.strip().split(":")]
    if not name:
        raise ConfigError(f"defense {item!r} has no name (write name:key=value)")
    params: dict[str, Any] = {}
    for part in parts:
        key, sep, raw = part.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"defense {item!r}: parameter {part!r} is not key=value")
        params[key.strip()] = _value(f"{name}.{key.strip()}", raw)
    return name, params


def parse_spec(spec: Spec) -> list[tuple[str, dict[str, Any]]]:
    """The (name, params) pairs of a spec string or list, in order; none for ``""``/``"none"``."""
    if spec is None:
        return []
    if isinstance(spec, str):
        items: list[Any] = [s for s in spec.split(",") if s.strip()]
        if [s.strip().lower() for s in items] == ["none"]:
            return []
    elif isinstance(spec, Sequence):
        items = list(spec)
    else:
        raise ConfigError(f"a defense spec is a string or a list, got {type(spec).__name__}")
    return [_parse_item(item) for item in items]


class DefensePipeline:
    """Ordered defenses: ``prepare`` (dataset transforms) and ``batch_loss`` (the step).

    Args:
        defenses: defense instances in the order they act.
    """

    def __init__(self, defenses: Sequence[Defense] = ()) -> None:
        self.defenses = tuple(defenses)
        _validate(self.defenses)
        self.dataset = [d for d in self.defenses if isinstance(d, DatasetDefense)]
        self.batch = [d for d in self.defenses if isinstance(d, BatchDefense)]
        self.loss_defense = next((d for d in self.defenses if isinstance(d, LossDefense)), None)

    @classmethod
    def from_spec(cls, spec: Spec) -> DefensePipeline:
        """Build and validate from a spec string or list (see the module docstring)."""
        return cls([build_defense(name, params) for name, params in parse_spec(spec)])

    def __len__(self) -> int:
        return len(self.defenses)

    def __repr__(self) -> str:
        return f"DefensePipeline({self.spec()!r})"

    @property
    def mixes(self) -> bool:
        """Whether the step trains on mixed labels (MixUp, CutMix)."""
        return any(d.mixes for d in self.batch)

    @property
    def official_origin(self) -> str:
        """The SAL origin the official code accumulates under this combination (§2.3)."""
        origins = {defense_info(d.name).official_origin for d in self.defenses} - {"running"}
        return origins.pop() if origins else "running"

    def prepare(self, x: torch.Tensor, y: torch.Tensor, *, seed: int) -> torch.Tensor:
        """All dataset transforms in order: uint8 N x C x H x W -> uint8 (``x`` itself if none)."""
        check_images(x, dtype=torch.uint8, what="DefensePipeline.prepare")
        for i, defense in enumerate(self.dataset):
            x = defense.prepare(x, y, seed=derive_seed(seed, i))
        return x

    def batch_loss(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epoch: int,
        gen: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """One training step's loss for a float batch N x C x H x W in [0, 1] on the device.

        Args:
            model: the model being trained (in train mode).
            x: the batch after crop/flip; y: int64 labels (N,).
            epoch: the 1-based epoch (UEraser's schedule).
            gen: CPU generator of this step's random draws (e.g. fit's ``BatchInfo.generator()``).

        Returns:
            ``(loss, logits, origin_loss)``: the scalar to backpropagate; logits N x classes for
            train accuracy (of the batch the model was trained on: mixed, erased, augmented or
            adversarial); the per-batch value the official SAL origin accumulates (the loss
            itself, or ``None`` when that origin is an eval pass: MixUp, CutMix).
        """
        check_images(x, dtype=None, what="DefensePipeline.batch_loss")
        if epoch < 1:
            raise UebenchError(f"batch_loss: epoch is 1-based, got {epoch}")
        targets: Targets = y
        for defense in self.batch:
            x, targets = defense.apply(x, targets, gen=gen)
        if self.loss_defense is not None:
            return self.loss_defense.loss(model, x, targets, epoch=epoch, gen=gen)
        logits = model(x)
        loss = per_sample_ce(logits, targets).mean()
        return loss, logits, None if self.mixes else loss

    def describe(self) -> str:
        """Short label for tables: ``"jpeg(q=10)+cutout(16)"`` (``"none"`` when empty)."""
        return "+".join(d.describe() for d in self.defenses) or "none"

    def spec(self) -> str:
        """Canonical spec string (non-default parameters only); ``from_spec`` reads it back."""
        return ",".join(_item_spec(d) for d in self.defenses) or "none"

    def dataset_spec(self) -> str:
        """The canonical spec of the dataset transforms alone: a cache key for ``prepare``."""
        return ",".join(_item_spec(d) for d in self.dataset) or "none"

    def to_config(self) -> list[dict[str, Any]]:
        """``[{"name": ..., every parameter}, ...]``: the resolved form for run configs."""
        return [{"name": d.name, **d.params()} for d in self.defenses]


def _item_spec(defense: Defense) -> str:
    defaults = defense_info(defense.name).defaults
    changed = {k: v for k, v in defense.params().items() if v != defaults[k]}
    return defense.name + "".join(f":{k}={_format(v)}" for k, v in changed.items())


def _format(value: Any) -> str:
    if value is None:
        return "none"
    return str(value).lower() if isinstance(value, bool) else repr(value)


def _validate(defenses: Sequence[Defense]) -> None:
    names = [d.name for d in defenses]
    spec = ",".join(names)
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"defense '{name}' appears twice in '{spec}'")
    for before, after in zip(defenses, defenses[1:]):
        if _stage(after) < _stage(before):
            raise ConfigError(
                f"'{after.name}' ({_STAGES[_stage(after)][1]}) cannot follow '{before.name}' "
                f"({_STAGES[_stage(before)][1]}) in '{spec}': list dataset transforms first (they "
                "run once before training), then batch transforms, then the loss-defining one"
            )
    losses = [d.name for d in defenses if isinstance(d, LossDefense)]
    if len(losses) > 1:
        raise ConfigError(f"{' and '.join(losses)} both define the training loss; use one")
    mixing = [d.name for d in defenses if isinstance(d, BatchDefense) and d.mixes]
    if len(mixing) > 1:
        raise ConfigError(f"{' and '.join(mixing)} both mix images and labels; use one")
    if mixing and losses:
        raise ConfigError(
            f"{mixing[0]} cannot be combined with {losses[0]}: no reference implementation mixes "
            "labels under that loss, and their official SAL origins differ"
        )
