"""Default training recipes, attached to datasets at registration (``register_dataset(recipe=)``).

A recipe is a partial ``TrainCfg``: the layer between the dataclass defaults and the user's
config (see :mod:`uebench.config`). Values were chosen by measurement (benchmarks/README.md) or
follow the paper's protocol for CIFAR-style data.
"""

from __future__ import annotations

from typing import Any

# 28x28 greyscale: no crop/flip (APBench trains SVHN/MNIST-like data without augmentation);
# Adam 2e-3, batch 16, cosine: LeNet-5 on a 10k Fashion-MNIST subset reaches ~0.83 test accuracy
# in 2 epochs on CPU (SGD 0.05/bs 32 reached 0.80-0.82 in the same budget).
GREYSCALE: dict[str, Any] = {
    "optimizer": "adam", "lr": 2e-3, "batch_size": 16, "schedule": "cosine",
    "augment": "none", "weight_decay": 0.0,
}
# The paper's code: SGD lr 0.1, momentum 0.9, wd 5e-4, bs 256, crop(4)+flip; its MultiStepLR
# milestones (100, 200, 300) never trigger in 50 epochs, i.e. a constant lr.
CIFAR: dict[str, Any] = {
    "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "batch_size": 256,
    "schedule": "multistep", "milestones": [100, 200, 300], "gamma": 0.5, "augment": "crop_flip",
}
# paper §3.1 toy task: one linear layer, SGD lr 0.1
TOY: dict[str, Any] = {
    "optimizer": "sgd", "lr": 0.1, "momentum": 0.0, "weight_decay": 0.0, "batch_size": 64,
    "schedule": "constant", "augment": "none",
}
SYNTHETIC: dict[str, Any] = {
    "optimizer": "adam", "lr": 3e-3, "batch_size": 32, "schedule": "cosine", "augment": "none",
    "weight_decay": 0.0,
}
SVHN: dict[str, Any] = {**CIFAR, "augment": "none", "lr": 0.01}
IMAGENET: dict[str, Any] = {**CIFAR, "augment": "flip", "schedule": "cosine", "batch_size": 128}
DIGITS: dict[str, Any] = {**GREYSCALE, "batch_size": 32}
