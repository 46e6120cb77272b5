"""The paper's loss-landscape experiments as one call each (Ye et al., ICLR 2025, arXiv 2509.08058,
§3.1, Figs. 1 and 10; setups in docs/landscape.md).

- :func:`run_toy`: ``make_classification`` (5000 x 12, 10 classes; the registered ``toy``
  dataset), one linear layer 12 -> 10, SGD lr 0.1, 10 epochs, a snapshot every 5 steps; clean vs
  a class-wise OPS poison (the paper: "we employ OPS to generate class-wise perturbations").
- :func:`run_lenet`: LeNet-5 on a 10k Fashion-MNIST subset (MNIST is not available offline), SGD
  momentum 0.9 as the paper's MNIST run but lr 0.01 (see LENET_RECIPE); clean vs OPS and EM
  (the Fig. 10 analogue).

Every step is cached: poisons, runs (with trajectories) and the landscape are reused when
re-run, and ``uebench plot OUT`` redraws everything. Layout::

    OUT/poisons/<attack>/   OUT/runs/clean/  OUT/runs/<attack>/   OUT/figures/
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from uebench.attacks.generate import generate_poison
from uebench.config import RunCfg, resolve_run_cfg
from uebench.landscape.compute import RESULT_FILE, landscape
from uebench.landscape.plot_all import find_runs, plot_all
from uebench.landscape.record import record_run
from uebench.landscape.runs import read_final_state
from uebench.train.run import load_splits
from uebench.utils.io import read_json, write_json

# SGD lr 0.1 as the paper; no momentum/decay (not stated); batch 64 gives 63 steps per epoch
TOY_RECIPE = ("train.optimizer=sgd", "train.lr=0.1", "train.momentum=0.0",
              "train.weight_decay=0.0", "train.batch_size=64", "train.schedule=constant")
# the paper's MNIST settings are SGD lr 0.001, momentum 0.9 (batch size not stated). At CPU scale
# (10k images, 10 epochs) lr 0.001 leaves LeNet-5 under-trained and no poison bites (clean 0.80,
# OPS 0.80); lr 0.01 trains it (clean 0.86) and OPS bites (0.39) - measured, docs/landscape.md.
LENET_RECIPE = ("train.optimizer=sgd", "train.lr=0.01", "train.momentum=0.9",
                "train.weight_decay=0.0", "train.batch_size=32", "train.schedule=constant")


def compare_runs(cfg: RunCfg, poisons: Mapping[str, tuple[str, dict[str, Any]]], out: Path | str,
                 *, every: int | None = None, progress: bool = True,
                 landscape_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Generate ``poisons``, train clean and poisoned runs from the same initial weights with
    their trajectories recorded, then draw every figure (landscapes, CDFs) into ``OUT/figures``.

    Args:
        cfg: the clean run's settings (the poisoned runs differ only in ``poison``).
        poisons: ``{run name: (attack, attack params)}``.
        out: the experiment directory.
        every: snapshot interval in optimiser steps (default: about 150 snapshots per run).
        landscape_options: keyword arguments for :func:`uebench.landscape.landscape`.

    Returns:
        ``{"runs": {name: summary}, "figures": plot_all's report}`` (also ``OUT/summary.json``).
    """
    out = Path(out)
    init_seed = cfg.seed if cfg.init_seed is None else cfg.init_seed
    cfg = dataclasses.replace(cfg, init_seed=init_seed, poison=None)
    splits = load_splits(cfg)
    summaries = {"clean": record_run(cfg, out / "runs" / "clean", every=every, splits=splits,
                                     progress=progress)}
    for name, (method, params) in poisons.items():
        pdir = out / "poisons" / name
        generate_poison(method, dataset=cfg.data.name, out=pdir, data_dir=cfg.data.data_dir,
                        train_size=cfg.data.train_size, seed=cfg.seed, params=params,
                        progress=progress)
        run_cfg = dataclasses.replace(cfg, poison=str(pdir.resolve()))
        summaries[name] = record_run(run_cfg, out / "runs" / name, every=every, splits=splits,
                                     progress=progress)
    figures = plot_all(out, out=out / "figures", landscape_options=landscape_options)
    # the same paths on the *clean* training loss: where a UE run heads relative to the clean
    # minimum (paper §3.1: "initially approaches the global optimum and then gradually deviates")
    clean_view = out / "figures" / "clean-data"
    if not (clean_view / RESULT_FILE).is_file():
        runs = find_runs(out)  # plot_all's order, so both views have the same panels
        landscape([p for _, p in runs], clean_view, names=[n for n, _ in runs],
                  **{**dict(landscape_options or {}), "data": "clean"})
    result = {"runs": summaries, "figures": figures, "clean_data_figures": str(clean_view)}
    write_json(out / "summary.json", result)
    return result


def run_toy(out: Path | str = "runs/landscape-toy", *, epochs: int = 10, every: int = 5,
            seed: int = 0, grid: int = 31, overrides: Sequence[str] = (),
            progress: bool = True) -> dict[str, Any]:
    """Fig. 1: clean vs OPS on the toy task (about 30 s on one CPU core)."""
    cfg = resolve_run_cfg(dataset="toy", model="linear", epochs=epochs, seed=seed,
                          overrides=[*TOY_RECIPE, *overrides])
    # the whole 4000-sample training set: a linear model makes it cheap
    options = {"grid": grid, "n_samples": 4000}
    return compare_runs(cfg, {"ops": ("ops", {})}, out, every=every, progress=progress,
                        landscape_options=options)


def run_lenet(out: Path | str = "runs/landscape-lenet", *, train_size: int = 10000,
              test_size: int = 2000, epochs: int = 10, every: int | None = None, seed: int = 0,
              grid: int = 21, n_samples: int = 1000, data_dir: str | None = None,
              overrides: Sequence[str] = (), progress: bool = True) -> dict[str, Any]:
    """Fig. 10 analogue: LeNet-5 on Fashion-MNIST, clean vs OPS and EM (CPU-scaled EM)."""
    cfg = resolve_run_cfg(dataset="fashion-mnist", model="lenet5", train_size=train_size,
                          test_size=test_size, epochs=epochs, seed=seed, data_dir=data_dir,
                          overrides=[*LENET_RECIPE, *overrides])
    # EM with the victim's own architecture as surrogate, APBench's 5-step updates, <= 5 rounds
    em = {"surrogate": "lenet5", "max_rounds": 5, "batch_size": 256, "steps": 5,
          "step_size": 1.6 / 255}
    poisons = {"ops": ("ops", {}), "em": ("em", em)}
    options = {"grid": grid, "n_samples": n_samples}
    return compare_runs(cfg, poisons, out, every=every, progress=progress,
                        landscape_options=options)


LANDSCAPE_HEADER = ("run", "test acc", "train acc (own data)", "PC1 (%)", "PC1+PC2 (%)",
                    "final loss, own data", "final loss, clean data",
                    "lowest loss on clean data (step)", "median abs(w)", "max abs(w)")


def landscape_table(out: Path | str) -> tuple[tuple[str, ...], list[list[str]]]:
    """The numbers findings §7 quotes, one row per run of a :func:`compare_runs` directory:
    accuracy, how much of the path the leading PCs explain, the loss at the end of the path on
    the run's own and on the clean training data, the lowest clean-data loss along the path, and
    the final weights' magnitudes abs(w) (over the parameters the landscape used; no '|' in a
    column name: it would split the Markdown table)."""
    out = Path(out)
    summary = read_json(out / "summary.json")["runs"]
    own = {r["name"]: r for r in read_json(out / "figures" / RESULT_FILE)["runs"]}
    clean = {r["name"]: r for r in
             read_json(out / "figures" / "clean-data" / RESULT_FILE)["runs"]}
    rows = []
    for name, run in own.items():
        ratio, path = run["explained_variance_ratio"], clean[name]["path_loss"]
        low = min(range(len(path)), key=path.__getitem__)
        state = read_final_state(run["path"])
        w = torch.cat([state[n].detach().abs().reshape(-1).float() for n in run["parameters"]])
        rows.append([name, f"{summary[name]['test_acc']:.3f}", f"{summary[name]['train_acc']:.3f}",
                     f"{100 * ratio[0]:.0f}", f"{100 * (ratio[0] + ratio[1]):.0f}",
                     f"{run['final_loss']:.3g}", f"{clean[name]['final_loss']:.3g}",
                     f"{path[low]:.3g} ({clean[name]['steps'][low]})",
                     f"{w.median().item():.3g}", f"{w.max().item():.3g}"])
    return LANDSCAPE_HEADER, rows
