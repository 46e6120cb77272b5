"""Shared machinery of the surrogate-based attacks (EM, REM, TAP, HYPO, DC).

- :func:`build_surrogate`: a zoo model (``get_model``) normalised with the clean images' channel
  statistics, initialised from a seed stream.
- :func:`train_clean_surrogate`: TAP's "conservative" clean training through
  :func:`uebench.train.fit` (also HYPO's pretrained model).
- :func:`pgd` (from :mod:`uebench.adversary`, shared with adversarial training): projected
  gradient *descent* on a per-sample objective, projected to the eps-ball and [0, 1] every step.
- :func:`batched`: apply a per-batch crafting function over a dataset, keeping every finished batch
  on disk when a workdir is given (resume skips it).
- :class:`RunState`: an attack's workdir (config check, atomic state files) or a temporary one.

Images are float in [0, 1], N x C x H x W, on ``rt.device``; all randomness comes from
``rt.generator(...)`` streams (CPU generators), so runs are deterministic on CPU given ``rt.seed``.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

# pgd and its starts live in uebench.adversary (shared with adversarial training); re-exported
# here for the attacks that import them from this module
from uebench.adversary import pgd, uniform_start  # noqa: F401
from uebench.config import TrainCfg
from uebench.errors import ConfigError
from uebench.models import get_model
from uebench.runtime import Runtime, derive_seed
from uebench.train.classification import fit
from uebench.train.loop import resolve_precision
from uebench.utils.io import (
    atomic_torch_save,
    read_json,
    refuse_if_different,
    safe_torch_load,
    write_json,
)
from uebench.utils.progress import bar

STREAM_CLEAN = 8600  # seed stream of the clean surrogate shared by TAP and HYPO


def sub_runtime(rt: Runtime, *offsets: int, progress: bool = False) -> Runtime:
    """A runtime on the same device with a seed derived from ``rt.seed`` and ``offsets``."""
    seed = derive_seed(rt.seed, *offsets)
    return Runtime(device=rt.device, seed=seed, progress=progress and rt.progress)


def attack_precision(device: torch.device) -> str:
    """Autocast precision of crafting passes: the training default (bf16 on CUDA, fp32 on CPU)."""
    return resolve_precision(TrainCfg(), torch.device(device))[0]


def build_surrogate(
    name: str, x: torch.Tensor, num_classes: int, *, width: float, rt: Runtime,
    stream: tuple[int, ...],
) -> nn.Module:
    """A fresh zoo model for images like ``x``, normalised with ``x``'s per-channel mean/std."""
    mean = x.mean(dim=(0, 2, 3)).tolist()
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist() if x.shape[0] > 1 else [0.5] * x.shape[1]
    torch.manual_seed(derive_seed(rt.seed, *stream))  # initial weights depend on the seed only
    model = get_model(name, in_channels=x.shape[1], image_size=tuple(x.shape[2:]),
                      num_classes=num_classes, width=width, mean=mean, std=std)
    return model.to(rt.device)


def clean_surrogate_cfg(epochs: int) -> TrainCfg:
    """TAP's "conservative" recipe: SGD-Nesterov lr 0.1, bs 128, wd 5e-4, crop+flip, "linear" steps.

    The poisoning-forest "linear" schedule is a MultiStepLR (x0.1) at epochs // 2.667, // 1.6,
    // 1.142 (40 epochs: 14, 25, 35).
    """
    milestones = tuple(float(epochs // d) for d in (2.667, 1.6, 1.142))
    return TrainCfg(epochs=epochs, batch_size=128, optimizer="sgd", lr=0.1, momentum=0.9,
                    nesterov=True, weight_decay=5e-4, schedule="multistep", milestones=milestones,
                    gamma=0.1, augment="crop_flip")


def train_clean_surrogate(
    x: torch.Tensor, y: torch.Tensor, *, num_classes: int, rt: Runtime, name: str, width: float,
    epochs: int, run_dir: Path | None,
) -> nn.Module:
    """Train (or resume / reload from ``run_dir``) the clean surrogate of TAP and HYPO.

    The same seed and arguments give the same model, so TAP and HYPO share it.
    """
    model = build_surrogate(name, x, num_classes, width=width, rt=rt, stream=(STREAM_CLEAN, 0))
    srt = sub_runtime(rt, STREAM_CLEAN, 1, progress=True)
    fit(model, x, y, cfg=clean_surrogate_cfg(epochs), rt=srt, run_dir=run_dir,
        desc="clean surrogate")
    return model.eval()


# ----------------------------------------------------------------------------- state and batching


class RunState:
    """An attack's checkpoint directory ``workdir/<name>`` or, without a workdir, a temporary one.

    ``config`` (JSON-able) is written on first use; a later call with a different config raises
    instead of silently mixing two runs. Keys that may change between calls (e.g. a round cap
    raised to continue a run) must be left out of ``config``.
    """

    def __init__(self, workdir: Path | None, name: str, config: Mapping[str, Any]) -> None:
        self.persistent = workdir is not None
        self._tmp = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix=f"uebench-{name}-")
            self.root = Path(self._tmp.name)
        else:
            self.root = Path(workdir) / name
        if self.persistent:
            self._check(name, json.loads(json.dumps(dict(config))))

    def _check(self, name: str, config: dict[str, Any]) -> None:
        path = self.root / "config.json"
        if path.exists():
            refuse_if_different(self.root, read_json(path), config, what=f"a {name} run",
                                fix="Use a fresh --out (or delete its .work folder).")
        elif self.root.exists() and any(self.root.iterdir()):
            raise ConfigError(f"{self.root} is not empty and has no config.json; "
                              "use a fresh workdir")
        else:
            write_json(path, config)

    def dir(self, *parts: str) -> Path:
        """A subdirectory (created); temporary without a workdir."""
        path = self.root.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def store(self, *parts: str) -> Path | None:
        """Like :meth:`dir` but ``None`` without a workdir (nothing worth keeping on disk)."""
        return self.dir(*parts) if self.persistent else None

    def load(self, fname: str, device: torch.device | str = "cpu") -> Any:
        path = self.root / fname
        if not (self.persistent and path.exists()):
            return None
        return safe_torch_load(path, map_location=device)

    def save(self, fname: str, obj: Any) -> None:
        if self.persistent:
            atomic_torch_save(obj, self.root / fname)

    def remove(self, *parts: str) -> None:
        shutil.rmtree(self.root.joinpath(*parts), ignore_errors=True)

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> RunState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


CraftFn = Callable[[int, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def batched(
    x: torch.Tensor, y: torch.Tensor, craft: CraftFn, *, batch_size: int, store: Path | None,
    rt: Runtime, desc: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``craft(batch_index, xb, yb) -> (delta_b, loss_b)`` over consecutive batches of the data.

    With a ``store`` directory every finished batch is saved atomically and skipped on resume.
    Returns the whole ``delta`` and the per-sample losses.
    """
    n = x.shape[0]
    delta = torch.empty_like(x)
    losses = torch.empty(n, device=x.device)
    count = math.ceil(n / batch_size)
    pbar = bar(count, enabled=rt.show_progress, desc=desc, unit="batch")
    for b in range(count):
        sl = slice(b * batch_size, min((b + 1) * batch_size, n))
        path = store / f"batch{b:06d}.pt" if store is not None else None
        if path is not None and path.exists():
            saved = safe_torch_load(path, map_location=x.device)
            d, loss = saved["delta"], saved["loss"]
        else:
            d, loss = craft(b, x[sl], y[sl])
            if path is not None:
                atomic_torch_save({"delta": d.cpu(), "loss": loss.cpu()}, path)
        delta[sl], losses[sl] = d, loss
        pbar.update(1)
        pbar.set_postfix(loss=f"{float(losses[: sl.stop].mean()):.4f}")
    pbar.close()
    return delta, losses
