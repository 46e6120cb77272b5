"""The simple-model learnability probe: how much of the clean task can a linear model, or a
two-layer network, learn from the run's training data?

Each probe is trained on the run's training set (the protected images when the run is poisoned,
after the run's dataset-level defenses) and tested on the clean test set. Simple models take a
shortcut whenever there is one (a linearly separable perturbation is the cheapest feature there
is; Zhu et al., "Detection and Defense of Unlearnable Examples", AAAI 2024), so a poison that makes
data unlearnable for the victim should make it unlearnable for the probe too, while random noise
leaves the probe where it is on clean data. The probe does not read SAL and trains no copy of the
victim: it costs seconds on 2,000 images.

Settings (fixed, recorded with the value): pixels scaled to [-0.5, 0.5] and flattened; Adam lr 3e-3,
batch 128, 500 steps (whole epochs, at least that many steps: a fixed optimisation budget, so a
small training set is not under-fitted; 32 epochs of 2,000 images); the MLP has one hidden layer of
256 ReLU units; initial weights and data order from the run's seed. The value is cached in
``RUN/stats/probes.json`` (written atomically) and recomputed if the settings change. A run
whose data is not on this machine gives ``None``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from uebench.config import DataCfg, from_dict, to_dict
from uebench.data import load_dataset
from uebench.errors import UebenchError
from uebench.learnability.statistics.base import Pair, register_statistic
from uebench.runtime import derive_seed
from uebench.train.run import training_set
from uebench.train.rundir import read_config, stats_file
from uebench.utils.io import read_json, write_json

SETTINGS: dict[str, Any] = {"lr": 3e-3, "batch_size": 128, "steps": 500, "hidden": 256,
                            "version": 3}
_STREAM = {"linear": 9101, "mlp": 9102}


def _net(kind: str, features: int, classes: int) -> nn.Module:
    if kind == "linear":
        return nn.Linear(features, classes)
    return nn.Sequential(nn.Linear(features, SETTINGS["hidden"]), nn.ReLU(),
                         nn.Linear(SETTINGS["hidden"], classes))


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.float().div(255.0).sub(0.5).flatten(1)


def fit_probe(kind: str, x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor,
              y_test: torch.Tensor, *, classes: int, seed: int) -> float:
    """Train probe ``kind`` (linear | mlp) on uint8 images; its accuracy on the test images."""
    gen = torch.Generator().manual_seed(derive_seed(seed, _STREAM[kind]))
    xtr, xte = _flat(x_train), _flat(x_test)
    torch.manual_seed(derive_seed(seed, _STREAM[kind], 1))
    model = _net(kind, xtr.shape[1], classes)
    opt = torch.optim.Adam(model.parameters(), lr=SETTINGS["lr"])
    loss_fn = nn.CrossEntropyLoss()
    batch = SETTINGS["batch_size"]
    per_epoch = -(-xtr.shape[0] // batch)
    for _ in range(-(-SETTINGS["steps"] // per_epoch)):
        order = torch.randperm(xtr.shape[0], generator=gen)
        for start in range(0, xtr.shape[0], batch):
            idx = order[start:start + batch]
            opt.zero_grad(set_to_none=True)
            loss_fn(model(xtr[idx]), y_train[idx]).backward()
            opt.step()
    with torch.no_grad():
        pred = torch.cat([model(xte[i:i + 1024]).argmax(1) for i in range(0, xte.shape[0], 1024)])
    return float((pred == y_test).float().mean())


@functools.lru_cache(maxsize=2)
def _splits(data_key: str) -> Any:
    """The clean splits of a run's data settings, loaded once per process."""
    d = from_dict(DataCfg, json.loads(data_key))
    return load_dataset(d.name, data_dir=d.data_dir, train_size=d.train_size,
                        test_size=d.test_size, seed=d.subset_seed)


def probe_of_run(run_dir: Path, kind: str) -> float | None:
    """The probe's accuracy for one run directory (cached in ``RUN/stats/probes.json``)."""
    cache = stats_file(run_dir, "probes.json")
    stored: dict[str, Any] = {}
    if cache.is_file():
        try:
            stored = dict(read_json(cache))
        except (UebenchError, ValueError, TypeError):
            stored = {}
    entry = stored.get(kind)
    if isinstance(entry, dict) and entry.get("settings") == SETTINGS:
        value = entry.get("value")
        return float(value) if isinstance(value, (int, float)) else None
    try:
        cfg = read_config(run_dir)
        data = cfg.data
        if data.subset_seed is None:
            data = dataclasses.replace(data, subset_seed=cfg.seed)
        splits = _splits(json.dumps(to_dict(data), sort_keys=True))
        train = training_set(cfg, splits)
    except UebenchError:
        return None  # the data or the poison is not on this machine
    value = fit_probe(kind, train.x, train.y, splits.test.x, splits.test.y,
                      classes=train.num_classes, seed=cfg.seed)
    stored[kind] = {"settings": SETTINGS, "value": value}
    write_json(cache, stored)
    return value


def _probe(pair: Pair, kind: str) -> float | None:
    return None if pair.run.path is None else probe_of_run(Path(pair.run.path), kind)


@register_statistic("probe_linear", label="linear probe acc (%)",
                    order=70, less="lower", reads="data",
                    scale=100, digits=2,
                    description="clean test accuracy of a linear model trained on the run's "
                                "training data")
def probe_linear(pair: Pair) -> float | None:
    return _probe(pair, "linear")


@register_statistic("probe_mlp", label="2-layer probe acc (%)",
                    order=71, less="lower", reads="data",
                    scale=100, digits=2,
                    description="clean test accuracy of a 2-layer network (256 hidden units) "
                                "trained on the run's training data")
def probe_mlp(pair: Pair) -> float | None:
    return _probe(pair, "mlp")
