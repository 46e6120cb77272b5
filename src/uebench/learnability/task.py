"""What every SAL engine measures (``SALTask``), on which data pipeline (``SALData``), and the
plumbing the engines share (eval-mode measuring context, per-clone losses, ``SALResult``).

SAL: Ye et al., *How Far Are We From True Unlearnability?*, ICLR 2025, arXiv:2509.08058, Eq. 3;
docs/sal.md, "The paper's protocol, as its code runs it" (official semantics) and "Shared
machinery".
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from uebench.data.loader import AUGMENTATIONS
from uebench.errors import ConfigError

# (outputs M x ..., targets M x ...) -> per-sample losses (M,): a SAL task's training loss
SampleLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# origin names -> kind ("official": the epoch's running train loss; "exact": eval-mode L(θ))
ORIGINS = {"official": "official", "train_running": "official", "exact": "exact", "eval": "exact"}


@dataclass(frozen=True)
class SALData:
    """The training data pipeline an engine replays (compat, reference; docs/sal.md, "The
    training run").

    Args:
        batch_size: images per SGD step and per evaluation batch (paper: 256).
        augment: ``none``, ``flip``, ``crop`` or ``crop_flip`` (paper: crop_flip), fresh draws
            every pass, zero-fill crop padding.
        crop_padding: pixels of padding before the random crop (paper: 4).
        drop_last: drop the last short batch of every pass (paper code: True; uebench's training
            default: False). With True the ``exact`` origin of compat is measured on a random
            subset of ``(n // batch_size) * batch_size`` images per pass.

    The fast engine searches on un-augmented images in chunks and does not read this pipeline.
    """

    batch_size: int
    augment: str
    crop_padding: int = 4
    drop_last: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) \
                or self.batch_size < 1:
            raise ConfigError(f"SALData.batch_size must be an int >= 1, got {self.batch_size!r}")
        if self.augment not in AUGMENTATIONS:
            raise ConfigError(f"SALData.augment must be one of {', '.join(AUGMENTATIONS)}; "
                              f"got {self.augment!r}")
        if not isinstance(self.crop_padding, int) or self.crop_padding < 0:
            raise ConfigError(f"SALData.crop_padding must be an int >= 0, "
                              f"got {self.crop_padding!r}")
        if not isinstance(self.drop_last, bool):
            raise ConfigError(f"SALData.drop_last must be a bool, got {self.drop_last!r}")

    @classmethod
    def official(cls) -> SALData:
        """The paper code's pipeline: bs 256, RandomCrop(32, padding 4) + flip, drop_last."""
        return cls(batch_size=256, augment="crop_flip", crop_padding=4, drop_last=True)

    @classmethod
    def from_train_cfg(cls, cfg: Any) -> SALData:
        """The pipeline of a training config (``uebench.config.TrainCfg`` or anything with its
        ``batch_size``, ``augment``, ``crop_padding`` and ``drop_last`` attributes)."""
        return cls(batch_size=int(cfg.batch_size), augment=str(cfg.augment),
                   crop_padding=int(cfg.crop_padding), drop_last=bool(cfg.drop_last))

    @classmethod
    def coerce(cls, data: Any) -> SALData:
        """``data`` itself if it is a ``SALData``, else :meth:`from_train_cfg` of it."""
        if isinstance(data, SALData):
            return data
        if data is None or not all(hasattr(data, k) for k in
                                   ("batch_size", "augment", "crop_padding", "drop_last")):
            raise ConfigError(
                "SAL needs the training data pipeline explicitly: pass data=SALData(batch_size, "
                "augment, crop_padding, drop_last), SALData.official() or the run's TrainCfg; "
                f"got {data!r}")
        return cls.from_train_cfg(data)


@dataclass(frozen=True)
class SALTask:
    """What every engine measures: SAL of ``layers`` of ``model`` on ``(x, y)``.

    ``data``: the pipeline the compat/reference engines replay (:class:`SALData`; they refuse
    ``None``). :func:`uebench.learnability.sal.run_sal` always sets it.
    ``origin``: ``"official"`` = ``origin_loss`` (running train-mode loss, as the paper code; the
    eval-mode value when it is 0, as there) or ``"exact"`` = eval-mode L(θ), measured like the
    clones.
    ``loss``: the training loss as per-sample values, ``loss(outputs, targets) -> (M,)`` for M
    samples (outputs and targets with any trailing shape: logits and labels, dense maps and dense
    targets); L(θ) is their mean. ``None`` = cross-entropy on integer labels (the paper's).
    Multi-task SAL passes each task's loss (:func:`uebench.multitask.losses.sample_loss`).
    """

    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    rt: Any  # uebench.runtime.Runtime
    data: SALData | None = None
    eps: float = 0.05
    layers: tuple[str, ...] | None = None
    origin: str = "exact"
    origin_loss: float | None = None
    seed_offsets: tuple[int, ...] = (7, 0)
    dtype: torch.dtype | None = None
    precision: str = "fp32"
    loss: SampleLoss | None = None

    def __post_init__(self) -> None:
        if self.data is not None and not isinstance(self.data, SALData):
            raise ConfigError(f"SALTask.data must be a SALData, got {type(self.data).__name__}")
        if self.origin not in ORIGINS:
            raise ConfigError(f"origin must be one of {sorted(ORIGINS)}, got {self.origin!r}")
        if ORIGINS[self.origin] == "official" and self.origin_loss is None:
            raise ConfigError("origin='official' needs origin_loss (the epoch's running train "
                              "loss, see official_running_loss)")
        if self.precision not in ("fp32", "bf16"):
            raise ConfigError(f"precision must be fp32 or bf16, got {self.precision!r}")
        if not self.eps > 0:
            raise ConfigError(f"eps must be > 0, got {self.eps}")

    def generator(self, *offsets: int) -> torch.Generator:  # rt.generator(*seed_offsets, ...)
        return self.rt.generator(*self.seed_offsets, *offsets)

    def autocast(self) -> Any:
        if self.precision == "bf16":
            return torch.autocast(device_type=self.rt.device.type, dtype=torch.bfloat16)
        return torch.autocast(device_type=self.rt.device.type, enabled=False)

    def images(self, x: torch.Tensor) -> torch.Tensor:
        """A batch as float in [0, 1] in the working dtype, on the device."""
        x = x.to(self.rt.device)
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x
        return x.to(self.dtype or torch.float32)

    def losses(self, logits: torch.Tensor, y: torch.Tensor, reduction: str = "mean"
               ) -> torch.Tensor:
        """This task's loss of each clone: ``logits`` S x N x ..., ``y`` N x ... -> (S,)."""
        return clone_losses(logits, y, reduction, self.loss)

    def resolve_origin(self, exact: float) -> float:
        if ORIGINS[self.origin] == "official" and self.origin_loss not in (None, 0.0):
            return float(self.origin_loss)  # type: ignore[arg-type]
        return exact


@dataclass
class SALResult:
    """Per-layer SAL (``values``, ≥ 0) with its two one-sided parts and the origin used."""

    values: dict[str, float]
    s_max: dict[str, float]
    s_min: dict[str, float]
    origin: float
    engine: str
    seconds: float = 0.0
    details: dict[str, Any] | None = None


def full_precision(t: torch.Tensor) -> torch.Tensor:
    """bf16/fp16 (autocast) logits to float32 for the loss; float32/float64 stay as they are."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def clone_losses(logits: torch.Tensor, y: torch.Tensor, reduction: str = "mean",
                 loss: SampleLoss | None = None) -> torch.Tensor:
    """Loss of each clone: ``logits`` S x N x ..., ``y`` N x ... -> (S,) mean or sum over N.

    ``loss`` gives per-sample losses of the S·N flattened outputs against the targets repeated S
    times; ``None`` = cross-entropy on integer labels (``logits`` S x N x C, ``y`` (N,)).
    """
    flat = full_precision(logits.flatten(0, 1))
    targets = y.repeat(logits.shape[0], *([1] * (y.dim() - 1)))
    if loss is None:
        per_sample = F.cross_entropy(flat, targets, reduction="none")
    else:
        per_sample = loss(flat, targets)
    per_sample = per_sample.view(logits.shape[:2])
    return per_sample.mean(1) if reduction == "mean" else per_sample.sum(1)


@contextmanager
def measuring(model: nn.Module, device: torch.device,
              dtype: torch.dtype | None = None) -> Iterator[nn.Module]:
    """Eval mode (BatchNorm running statistics, no dropout), every parameter frozen.

    Yields ``model`` itself, or a deep copy when ``dtype``/``device`` differ from the model's, and
    restores every module's training flag and every parameter's ``requires_grad`` afterwards, so
    the caller's model leaves exactly as it came in (weights are never written).
    """
    param = next(model.parameters())
    same_device = param.device.type == device.type and (
        device.index is None or param.device.index == device.index)
    if (dtype is not None and param.dtype != dtype) or not same_device:
        work = copy.deepcopy(model).to(device=device, dtype=dtype or param.dtype)
    else:
        work = model
    modes = [(m, m.training) for m in work.modules()]
    grads = [(p, p.requires_grad) for p in work.parameters()]
    work.eval()
    for p, _ in grads:
        p.requires_grad_(False)
    try:
        yield work
    finally:
        for m, mode in modes:
            m.training = mode
        for p, flag in grads:
            p.requires_grad_(flag)
