"""Behavioural invariant on real data: shortcut poisons lower clean test accuracy, random noise
at EM's budget does not — in the main job's first recipe (Fashion-MNIST 2000 training images,
ResNet-18 at width 1/8 with BatchNorm, SGD 0.1 momentum 0.9 wd 5e-4, batch 128, cosine; the main
job now uses batch 64 and wd 5e-3, docs/findings.md §1), shortened to 8 epochs and 1000 test
images to keep the suite's time (10 epochs on 2000 test images cost 1.6x as much).

Measured at these settings (Intel Xeon, 2 threads): clean 80.7 %, random 81.1 %, OPS 25.8 %,
LSP 56.2 %; at 10 epochs on an AVX-512 machine earlier: clean 82.9 / 83.7 %, random 82.6 / 82.2 %,
OPS 32.5 / 23.8 %, LSP 55.0 / 58.4 %. Margins are set well inside those gaps: different CPUs
round differently and a run can move a few points. (LSP needs the 2000 images: at 1000 it did
not bite at all.)"""

from __future__ import annotations

import pytest
import torch

from uebench import Runtime, get_model, load_dataset
from uebench.attacks import run_attack
from uebench.attacks.lsp import lsp_radius
from uebench.config import TrainCfg
from uebench.train import fit

from .conftest import has_dataset

SGD = TrainCfg(epochs=8, batch_size=128, optimizer="sgd", lr=0.1, momentum=0.9,
               weight_decay=5e-4, schedule="cosine", augment="none")
# attack -> the least drop in test accuracy (points) it must cause
ATTACKS = {"ops": ({}, 0.30), "lsp": ({"eps": lsp_radius((1, 28, 28))}, 0.15)}


@pytest.mark.slow
@pytest.mark.skipif(not has_dataset("fashion-mnist"), reason="Fashion-MNIST files not present")
def test_shortcut_poisons_lower_clean_accuracy_random_does_not():
    splits = load_dataset("fashion-mnist", train_size=2000, test_size=1000, seed=0)
    train, test = splits.train, splits.test
    mean, std = train.channel_stats()
    rt = Runtime("cpu", 0, progress=False)

    def accuracy(x: torch.Tensor) -> float:
        torch.manual_seed(0)
        model = get_model("resnet18", in_channels=1, image_size=28, mean=mean, std=std,
                          width=0.125)
        rows = fit(model, x, train.y, cfg=SGD, rt=rt, x_test=test.x, y_test=test.y)
        return rows[-1]["test_acc"]

    clean = accuracy(train.x)
    xf = train.float()
    acc = {}
    for name, (params, _) in {"random": ({}, 0.0), **ATTACKS}.items():
        delta, _ = run_attack(name, train.x, train.y, num_classes=10, rt=rt, params=params)
        acc[name] = accuracy((xf + delta).clamp(0, 1))
    print(f"clean {clean:.4f}", {k: round(v, 4) for k, v in acc.items()})
    assert clean > 0.75, clean
    assert abs(acc["random"] - clean) < 0.05, (clean, acc)
    for name, (_, drop) in ATTACKS.items():
        assert acc[name] < clean - drop, (name, clean, acc)
