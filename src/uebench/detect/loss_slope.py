"""Early-loss-slope detector: a poison is learned too fast.

Error-minimising and shortcut poisons are made so that a network's training loss falls quickly:
the perturbation is an easy feature that predicts the label (Huang et al., ICLR 2021, arXiv
2101.04898: the training loss on unlearnable examples drops to near zero within the first
epochs). So a small CNN trained for one or two epochs removes a much larger share of its initial
loss on poisoned data than on clean data of the same kind.

Measured with a zoo model (``lenet5``; ``tiny`` for images smaller than 16 px) trained with
:func:`uebench.train.fit` on the whole set for ``epochs`` epochs (Adam, no augmentation). The
statistic is the share of the initial loss removed, ``1 - L_E / L_0``, where ``L_0`` and
``L_E`` are the eval-mode mean cross-entropy over the set before and after training; the sample
score is the negated per-image loss after training (a poisoned image is fit first, so its loss
is low). The training-mode batch losses of every epoch are reported as the loss curve.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from uebench.config import TrainCfg
from uebench.data.base import ImageSet
from uebench.detect.base import Measurement, per_image, register_detector
from uebench.models import get_model
from uebench.runtime import Runtime, derive_seed
from uebench.train import EpochContext, fit

_STREAM = 9103  # seed stream of this detector
SMALLEST_LENET = 16  # LeNet-5's two 5x5 convolutions and pools need images of at least 16 px


def per_sample_loss(model: torch.nn.Module, images: ImageSet, device: torch.device) -> torch.Tensor:
    """Eval-mode cross-entropy of every image (float64, N)."""
    return per_image(model, images, device,
                     lambda logits, y: F.cross_entropy(logits, y, reduction="none").double())


@register_detector(
    "loss_slope", needs_reference=True, sample_scores=True, floor=0.05,
    statistic="share of the initial loss a small CNN removes in the first epochs, "
              "1 - L_E / L_0 (eval-mode mean cross-entropy on the set)",
    cost="one short fit of LeNet-5 (2 epochs over the set); no GPU needed",
    description="a small CNN's training loss falls much faster on poisoned data",
    paper="idea: Huang et al., ICLR 2021, arXiv 2101.04898 (EM drives the training loss down)",
)
def loss_slope(
    images: ImageSet, *, rt: Runtime, model: str = "lenet5", epochs: int = 2,
    lr: float = 1e-3, batch_size: int = 64,
) -> Measurement:
    """How fast a small CNN's loss falls on the set.

    Args:
        images: the candidate set, uint8 N x C x H x W.
        rt: device and seed (initial weights, data order).
        model: a zoo model (``uebench models``); images smaller than 16 px use ``tiny``.
        epochs: training epochs (the first ones: the detector looks at the early slope).
        lr, batch_size: Adam (no weight decay, constant rate, no augmentation).

    Returns:
        value: ``1 - L_E / L_0`` (<= 1; 0 = nothing learned); samples: ``-loss`` per image after
        training (N,); details: ``loss_init``, ``loss_final`` and the mean training-mode batch
        loss of every epoch (``train_loss_<e>``).
    """
    c, h, w = images.image_shape
    name = model if min(h, w) >= SMALLEST_LENET else "tiny"
    mean, std = images.channel_stats()
    torch.manual_seed(derive_seed(rt.seed, _STREAM))  # initial weights depend on the seed only
    net = get_model(name, in_channels=c, image_size=(h, w), num_classes=images.num_classes,
                    mean=mean, std=std).to(rt.device)
    loss0 = per_sample_loss(net, images, rt.device)
    cfg = TrainCfg(epochs=epochs, batch_size=batch_size, optimizer="adam", lr=lr,
                   weight_decay=0.0, schedule="constant", augment="none", precision="fp32")
    curve: dict[str, Any] = {}

    def record(ctx: EpochContext) -> None:
        curve[f"train_loss_{ctx.epoch}"] = float(ctx.train_loss)

    fit(net, images.x, images.y, cfg=cfg, callbacks=[record], desc="detect",
        rt=Runtime(device=rt.device, seed=derive_seed(rt.seed, _STREAM, 1), progress=False))
    loss = per_sample_loss(net, images, rt.device)
    init, final = float(loss0.mean()), float(loss.mean())
    value = 1.0 - final / init if init > 0 and math.isfinite(final) else 0.0
    return Measurement(value, (-loss).numpy(),
                       {"loss_init": init, "loss_final": final, **curve})
