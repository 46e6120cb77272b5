"""Training runs as the landscape code needs them: model with final and initial weights, and data.

A run directory as written by ``uebench train`` holds ``config.yaml`` (the resolved RunCfg) and
``checkpoint.pt`` (key ``"model"`` = state dict after the last finished epoch). The model and the
data are rebuilt exactly as training built them (``build_model``, ``load_splits``,
``training_set``), so the initial weights come from the run's ``init_seed`` and a poisoned run
sees its poisoned training set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from uebench.config import RunCfg
from uebench.data.base import ImageSet, Splits
from uebench.errors import UebenchError
from uebench.registry import Registry
from uebench.runtime import derive_seed
from uebench.train import rundir
from uebench.train.run import build_model, load_splits, training_set
from uebench.utils.io import safe_torch_load

_SUBSET_STREAM = 8102  # generator stream of the fixed loss-evaluation subset

DataFn = Callable[[RunCfg, Splits], ImageSet]
LOSS_DATA: Registry[DataFn] = Registry("landscape data")


@LOSS_DATA.register("train", description="the run's own training set (poisoned for a UE run)")
def _own_train(cfg: RunCfg, splits: Splits) -> ImageSet:
    return training_set(cfg, splits)


@LOSS_DATA.register("clean", description="the clean training set, for every run")
def _clean_train(cfg: RunCfg, splits: Splits) -> ImageSet:
    return splits.train


@LOSS_DATA.register("test", description="the clean test set")
def _test(cfg: RunCfg, splits: Splits) -> ImageSet:
    return splits.test


@dataclass
class LandscapeRun:
    """One run, loaded: ``model`` holds the final weights (eval mode, CPU)."""

    name: str
    path: Path
    cfg: RunCfg
    model: nn.Module
    init: dict[str, torch.Tensor]
    splits: Splits

    def final(self, names: Sequence[str]) -> dict[str, torch.Tensor]:
        params = dict(self.model.named_parameters())
        return {n: params[n].detach() for n in names}


def read_final_state(run_dir: Path | str) -> dict[str, torch.Tensor]:
    """The model state dict of the run's last checkpoint (``checkpoint.pt``, key ``model``)."""
    path = Path(run_dir) / rundir.CHECKPOINT
    if not path.is_file():
        raise UebenchError(f"run {run_dir} has no checkpoint.pt: train it (or let it finish) "
                           "before drawing its landscape or parameter CDFs")
    state = safe_torch_load(path)
    if not isinstance(state, dict) or "model" not in state:
        raise UebenchError(f"{path} has no 'model' entry: not a uebench checkpoint")
    return state["model"]


def load_landscape_run(run_dir: Path | str, *, name: str | None = None,
                       dtype: torch.dtype = torch.float32) -> LandscapeRun:
    """Rebuild a run's model (final weights loaded) and its data splits."""
    run_dir = Path(run_dir)
    cfg = rundir.read_config(run_dir)
    splits = load_splits(cfg)
    model = build_model(cfg, splits.train)
    init = {n: p.detach().clone().to(dtype) for n, p in model.named_parameters()}
    try:
        model.load_state_dict(read_final_state(run_dir))
    except RuntimeError as exc:
        raise UebenchError(f"checkpoint of run {run_dir} does not fit the model its "
                           f"config.yaml describes: {exc}") from exc
    model.to(dtype).eval()
    return LandscapeRun(name or run_dir.name, run_dir, cfg, model, init, splits)


def check_same_architecture(runs: Sequence[LandscapeRun]) -> None:
    """Refuse runs whose parameters differ in names or shapes (their landscapes don't compare)."""
    first = {n: tuple(p.shape) for n, p in runs[0].model.named_parameters()}
    for run in runs[1:]:
        other = {n: tuple(p.shape) for n, p in run.model.named_parameters()}
        if other != first:
            diff = sorted(set(first.items()) ^ set(other.items()))[:4]
            raise UebenchError(
                f"runs {runs[0].name} and {run.name} have different models "
                f"({runs[0].cfg.model.name} vs {run.cfg.model.name}; first differences: {diff}); "
                "compare runs of one architecture"
            )


def loss_data(run: LandscapeRun, which: str, n_samples: int,
              seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed, seeded subset of ``n_samples`` images and labels from the chosen data."""
    data = LOSS_DATA.get(which)(run.cfg, run.splits)
    n = min(n_samples, len(data))
    gen = torch.Generator().manual_seed(derive_seed(seed, _SUBSET_STREAM))
    index = torch.randperm(len(data), generator=gen)[:n].sort().values
    return data.x[index], data.y[index]
