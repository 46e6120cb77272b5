"""Simple-network detector: availability poisons are *too easy* for simple models.

Zhu, Yu and Gao, "Detection and Defense of Unlearnable Examples", AAAI 2024, arXiv 2312.08898:
the perturbations of unlearnable examples are a shortcut simple networks (a linear model, a
two-layer MLP) learn and generalise with, so on poisoned data they reach an accuracy on held-out
images of the *same* (poisoned) set far above what they reach on clean data of the same kind.

Measured here with two-fold cross-fitting: the set is split into two seeded, class-stratified
halves; a linear model and a 2-layer MLP (one hidden layer of ``hidden`` ReLU units) are trained
on one half with :func:`uebench.train.fit` (Adam, no augmentation) and predict the other, and the
other way round, so every image gets a held-out prediction. The statistic is the held-out
accuracy of the better of the two networks (a fraction in [0, 1]); the sample score is the mean
of the two networks' held-out probability of the image's own label (a poisoned image carries its
label's shortcut, so it is predicted confidently).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from uebench.config import TrainCfg
from uebench.data.base import ImageSet
from uebench.detect.base import Measurement, cross_fit, per_image, register_detector
from uebench.models import Classifier
from uebench.runtime import Runtime, derive_seed
from uebench.train import fit

_STREAM = 9101  # seed stream of this detector


def train_and_predict(
    net: nn.Module, images: ImageSet, train_idx: torch.Tensor, test_idx: torch.Tensor, *,
    cfg: TrainCfg, rt: Runtime, seed: int,
) -> torch.Tensor:
    """Softmax probabilities (len(test_idx) x classes) of ``net`` (normalised with the training
    half's channel statistics) after :func:`fit` on ``train_idx`` with ``cfg``."""
    train = images.subset(train_idx)
    mean, std = train.channel_stats()
    model = Classifier(net, mean, std).to(rt.device)
    fit(model, train.x, train.y, cfg=cfg, rt=Runtime(device=rt.device, seed=seed, progress=False),
        desc="detect")
    return per_image(model, images.subset(test_idx), rt.device,
                     lambda logits, _y: torch.softmax(logits, dim=1))


# the two simple networks, (in_features, classes, hidden) -> module: softmax regression and a
# 2-layer MLP with one hidden layer of ReLU units
NETWORKS: dict[str, Callable[[int, int, int], nn.Module]] = {
    "linear": lambda d, c, _h: nn.Sequential(nn.Flatten(), nn.Linear(d, c)),
    "mlp": lambda d, c, h: nn.Sequential(nn.Flatten(), nn.Linear(d, h), nn.ReLU(), nn.Linear(h, c)),
}


@register_detector(
    "simple", needs_reference=True, sample_scores=True, floor=0.05,
    statistic="held-out accuracy (2-fold cross-fit) of the better of a linear model and a "
              "2-layer MLP trained on the set",
    cost="4 small fits (2 networks x 2 folds, 20 epochs of half the set each); no GPU needed",
    description="simple networks generalise on poisoned data far better than on clean data",
    paper="Zhu, Yu and Gao, AAAI 2024, arXiv 2312.08898",
)
def simple(
    images: ImageSet, *, rt: Runtime, epochs: int = 20, hidden: int = 128, lr: float = 1e-3,
    batch_size: int = 128,
) -> Measurement:
    """Held-out accuracy of simple networks on the set itself.

    Args:
        images: the candidate set, uint8 N x C x H x W.
        rt: device and seed.
        epochs, hidden, lr, batch_size: each network's training (Adam, weight decay 1e-4, no
            augmentation, constant learning rate).

    Returns:
        value: max over the two networks of the held-out accuracy in [0, 1]; samples: mean held-out
        probability of the own label (N,); details: ``acc_linear``, ``acc_mlp``.
    """
    cfg = TrainCfg(epochs=epochs, batch_size=batch_size, optimizer="adam", lr=lr,
                   weight_decay=1e-4, schedule="constant", augment="none", precision="fp32")
    features = int(np.prod(images.image_shape))

    def fit_predict(train_idx: torch.Tensor, test_idx: torch.Tensor, fold: int) -> torch.Tensor:
        own = images.y[test_idx]
        cols = []
        for k, name in enumerate(NETWORKS):
            seed = derive_seed(rt.seed, _STREAM, fold, k)
            torch.manual_seed(seed)  # initial weights depend on the seed only
            net = NETWORKS[name](features, images.num_classes, hidden)
            probs = train_and_predict(net, images, train_idx, test_idx, cfg=cfg, rt=rt, seed=seed)
            right = (probs.argmax(1) == own).double()
            cols.append(torch.stack([right, probs.gather(1, own[:, None]).squeeze(1).double()], 1))
        return torch.stack(cols, 1)  # len(test) x networks x (correct, p_own)

    held = cross_fit(images.y, rt.generator(_STREAM), fit_predict)
    acc = held[:, :, 0].mean(0)
    details = {f"acc_{name}": float(acc[k]) for k, name in enumerate(NETWORKS)}
    return Measurement(float(acc.max()), held[:, :, 1].mean(1).numpy(), details)
