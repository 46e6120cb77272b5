"""Defense contract, registry and the helpers the defenses share.

A defense is a frozen dataclass whose fields are its hyperparameters (defaults = the paper-parity
preset, validated in ``__post_init__`` with :class:`~uebench.errors.ConfigError`). It subclasses
one of three bases, one small interface each:

- :class:`DatasetDefense` (kind ``dataset``): ``prepare(x, y, *, seed) -> x`` on the whole training
  set, uint8 N x C x H x W in and out, once before training (the caller caches the result). It
  sits where APBench's PIL transforms sit: before crop/flip.
- :class:`BatchDefense` (kind ``batch``): ``apply(x, targets, *, gen) -> (x, targets)`` on each
  float batch (in [0, 1], on the training device) inside the step, after crop/flip.
- :class:`LossDefense` (kind ``batch`` for UEraser, ``procedure`` for adversarial training):
  ``loss(model, x, targets, *, epoch, gen) -> (loss, logits, origin_loss)``; owns the training
  loss of the step.

Registry metadata (:class:`DefenseInfo`): kind, defaults, paper, the SAL origin the official code
accumulates under the defense (``official_origin``; docs/sal.md, "The origin") and a description.

Randomness: every draw comes from the ``torch.Generator`` handed to the step (a CPU generator,
e.g. the batch's stream ``BatchInfo.generator()`` of ``fit``). Draws that must happen on the
device use a generator on the device seeded from it (:func:`device_generator`). kornia samples
from torch's *global* RNG, so a kornia call runs inside :func:`kornia_call`, which forks the
global RNG, seeds it from ``gen`` and restores it afterwards (deterministic given ``gen``,
invisible to the rest of the step), with autocast off.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from uebench.errors import ConfigError, UebenchError
from uebench.registry import Registry
from uebench.utils.typed import from_dict

KINDS = ("dataset", "batch", "procedure")
# what the official SAL code accumulates as origin_loss under each defense
# (docs/sal.md, "The origin")
ORIGINS = ("running", "running_adversarial", "running_max", "eval")


class Mixed(NamedTuple):
    """Mixed labels: each image is ``1 - lam`` of class ``y`` and ``lam`` of class ``partner``."""

    y: torch.Tensor  # int64 (N,): the label of the image the batch row started as
    partner: torch.Tensor  # int64 (N,): the label of the image mixed in
    lam: torch.Tensor  # float (N,) in [0, 1]: the partner's share

    def probs(self, num_classes: int) -> torch.Tensor:
        """Soft labels, N x num_classes, each row summing to one."""
        lam = self.lam.float()[:, None]
        return (1 - lam) * F.one_hot(self.y, num_classes) + lam * F.one_hot(
            self.partner, num_classes
        )


Targets = torch.Tensor | Mixed  # int64 labels (N,) or mixed labels


def per_sample_ce(logits: torch.Tensor, targets: Targets) -> torch.Tensor:
    """Cross-entropy per sample (N,); mixed labels weight the two classes' CE (APBench loss_mix)."""
    logits = logits.float()
    if isinstance(targets, Mixed):
        own = F.cross_entropy(logits, targets.y, reduction="none")
        other = F.cross_entropy(logits, targets.partner, reduction="none")
        lam = targets.lam.to(logits.dtype)
        return (1 - lam) * own + lam * other
    return F.cross_entropy(logits, targets, reduction="none")


def draw_seed(gen: torch.Generator) -> int:
    """A 63-bit seed drawn from a CPU generator (no device work)."""
    return int(torch.randint(0, 2**63 - 1, (1,), generator=gen))


def device_generator(gen: torch.Generator, device: torch.device) -> torch.Generator:
    """A generator on ``device`` seeded from ``gen``: device-side draws without host copies."""
    return torch.Generator(device=device).manual_seed(draw_seed(gen))


@contextmanager
def kornia_call(gen: torch.Generator, device: torch.device) -> Iterator[None]:
    """Context for a kornia augmentation: its draws seeded from ``gen``, computed in fp32.

    kornia samples from torch's global RNG: fork it (CPU and ``device``), seed it from ``gen`` and
    restore it on exit. Autocast is switched off: augmentations are data preprocessing (APBench
    runs them in fp32), and kornia's plasma fractals are convolutions autocast would run in bf16.
    """
    device = torch.device(device)
    seed = draw_seed(gen)
    devices = [device.index if device.index is not None else torch.cuda.current_device()] if (
        device.type == "cuda") else []
    with torch.random.fork_rng(devices=devices), torch.autocast(device.type, enabled=False):
        torch.manual_seed(seed)
        yield


def check_images(x: torch.Tensor, *, dtype: torch.dtype | None, what: str) -> None:
    """Raise UebenchError unless ``x`` is an N x C x H x W batch (of ``dtype``, if given)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise UebenchError(f"{what} expects images N x C x H x W, got {shape}")
    if dtype is not None and x.dtype != dtype:
        raise UebenchError(
            f"{what} expects {dtype} images, got {x.dtype}"
            + (" (convert with (x * 255).round().to(torch.uint8))" if dtype == torch.uint8 else "")
        )


def map_chunks(
    x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor], chunk: int = 1024
) -> torch.Tensor:
    """``fn`` over consecutive chunks of a uint8 dataset: float intermediates stay small."""
    if len(x) == 0:
        return x.clone()
    return torch.cat([fn(x[i : i + chunk]) for i in range(0, len(x), chunk)])


def check_range(name: str, value: float, low: float, high: float | None = None) -> None:
    """ConfigError unless ``value`` is finite and ``low <= value`` (and ``value <= high``)."""
    if not math.isfinite(value) or value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ConfigError(f"{name} must be {bound}, got {value}")


# ----------------------------------------------------------------------------- kinds


@dataclass(frozen=True)
class Defense:
    """Base class: the fields are the hyperparameters. ``name`` is set by registration."""

    name: ClassVar[str] = ""

    def params(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def describe(self) -> str:
        """A short label for tables, e.g. ``jpeg(q=10)``."""
        inner = ",".join(f"{k}={v}" for k, v in self.params().items())
        return f"{self.name}({inner})" if inner else self.name


@dataclass(frozen=True)
class DatasetDefense(Defense):
    """Runs once on the training set: uint8 N x C x H x W in, uint8 of the same shape out."""

    def prepare(self, x: torch.Tensor, y: torch.Tensor, *, seed: int) -> torch.Tensor:
        raise NotImplementedError


@dataclass(frozen=True)
class BatchDefense(Defense):
    """Transforms a float batch in [0, 1] (and its labels) on the training device."""

    mixes: ClassVar[bool] = False  # produces Mixed labels (MixUp, CutMix)

    def apply(
        self, x: torch.Tensor, targets: Targets, *, gen: torch.Generator
    ) -> tuple[torch.Tensor, Targets]:
        raise NotImplementedError


@dataclass(frozen=True)
class LossDefense(Defense):
    """Owns the step's loss: returns ``(loss, logits, origin_loss)`` for a float batch."""

    def loss(
        self, model: nn.Module, x: torch.Tensor, targets: Targets, *, epoch: int,
        gen: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        raise NotImplementedError


_BASES: dict[str, tuple[type, ...]] = {
    "dataset": (DatasetDefense,),
    "batch": (BatchDefense, LossDefense),
    "procedure": (LossDefense,),
}

# ----------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class DefenseInfo:
    """Registry metadata of one defense."""

    name: str
    kind: str
    cls: type[Defense]
    defaults: Mapping[str, Any]
    paper: str
    official_origin: str
    description: str


DEFENSES: Registry[type[Defense]] = Registry("defense")
D = TypeVar("D", bound=type[Defense])


def register_defense(
    name: str, *, kind: str, paper: str, official_origin: str, description: str
) -> Callable[[D], D]:
    """Class decorator: ``@register_defense("jpeg", kind="dataset", ...)`` on a frozen dataclass."""
    if kind not in KINDS or official_origin not in ORIGINS:
        raise ValueError(f"defense {name}: kind must be in {KINDS}, origin in {ORIGINS}")

    def deco(cls: D) -> D:
        if not (dataclasses.is_dataclass(cls) and issubclass(cls, _BASES[kind])):
            raise TypeError(f"defense {name}: a {kind} defense subclasses {_BASES[kind]}")
        fields = dataclasses.fields(cls)
        if any(f.default is dataclasses.MISSING for f in fields):
            raise TypeError(f"defense {name}: every parameter needs a default")
        cls.name = name
        info = DefenseInfo(name, kind, cls, {f.name: f.default for f in fields}, paper,
                           official_origin, description)
        DEFENSES.register(name, info=info)(cls)
        return cls

    return deco


def defense_info(name: str) -> DefenseInfo:
    return DEFENSES.meta(name)["info"]


def build_defense(name: str, params: Mapping[str, Any] | None = None) -> Defense:
    """An instance of a registered defense; unknown names, keys, types or ranges raise."""
    cls = DEFENSES.get(name)
    return from_dict(cls, dict(params or {}), prefix=f"{name}.")
