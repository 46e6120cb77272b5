"""Per-layer empirical CDFs of trained weights, several runs per panel (paper App. A.3, Fig. 9).

The paper reports that a model trained on UEs has smaller parameter values than a clean one
(Ye et al., ICLR 2025, arXiv 2509.08058, Fig. 9). This draws one panel per *layer group* with
one CDF per run, from the runs' checkpoints. Groups are module paths cut at a depth chosen so
there are at most ``max_groups`` panels: LeNet-5 gives ``conv1 ... fc3``; a CIFAR ResNet-18
gives ``conv1, bn1, layer1.0, ..., layer4.1, linear``. Values per group come from
:func:`uebench.learnability.parameter_cdf.parameter_values` (trainable parameters, no BN
statistics); the all-parameters CDF is
:func:`uebench.learnability.parameter_cdf.plot_parameter_cdf`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from uebench.landscape.plots import FORMATS, PANEL, save_figure, style
from uebench.learnability.parameter_cdf import parameter_values

_WRAPPERS = ("net.",)  # uebench models: Classifier(normalize, net); "net." carries no meaning
_LEAVES = ("weight", "bias")


def _module_path(name: str) -> list[str]:
    for prefix in _WRAPPERS:
        # keep the wrapper before a bare index (nn.Sequential): "net.1", not "1"
        if name.startswith(prefix) and not name[len(prefix):][:1].isdigit():
            name = name[len(prefix):]
    parts = name.split(".")
    return parts[:-1] if len(parts) > 1 and parts[-1] in _LEAVES else parts


def layer_groups(state_dict: Mapping[str, Any], *, max_groups: int = 12,
                 depth: int | None = None) -> dict[str, list[str]]:
    """Group the trainable entries of a state dict into layer groups (insertion order kept).

    Args:
        state_dict: a model's ``state_dict()`` (BN running statistics and the input
            normalisation are left out, as in ``parameter_values``).
        max_groups: with ``depth=None``, the deepest cut giving at most this many groups.
        depth: cut module paths after this many components instead.
    """
    keys = [k for k in state_dict if not k.startswith("normalize.")
            and not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    paths = {k: _module_path(k) for k in keys}
    deepest = max((len(p) for p in paths.values()), default=1)

    def cut(d: int) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for k, p in paths.items():
            groups.setdefault(".".join(p[:d]), []).append(k)
        return groups

    if depth is not None:
        return cut(depth)
    best = cut(1)
    for d in range(2, deepest + 1):
        groups = cut(d)
        if len(groups) > max_groups:
            break
        best = groups
    return best


def plot_layer_cdfs(runs: Mapping[str, Mapping[str, Any]], stem: Path | str, *,
                    absolute: bool = False, max_groups: int = 12, points: int = 1000,
                    formats: Sequence[str] = FORMATS) -> list[Path]:
    """One panel per layer group, one empirical CDF per run (runs share one architecture).

    Args:
        runs: ``{run name: state_dict}``, clean run first by convention.
        stem: output path without suffix (``stem.png``, ``stem.pdf``).
        absolute: CDF of |value| instead of the signed value.
        max_groups: at most this many panels (see :func:`layer_groups`).
        points: each curve passes through this many evenly spaced order statistics.
    """
    if not runs:
        raise ValueError("plot_layer_cdfs needs at least one run")
    groups = layer_groups(next(iter(runs.values())), max_groups=max_groups)
    ncols = min(4, len(groups))
    nrows = math.ceil(len(groups) / ncols)
    with style():
        fig = Figure(figsize=(PANEL * ncols * 0.85, PANEL * 0.75 * nrows + 0.4))
        axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
        for ax, (group, keys) in zip(axes, groups.items()):
            for name, state in runs.items():
                values = np.sort(parameter_values({k: state[k] for k in keys},
                                                  absolute=absolute))
                idx = np.unique(np.linspace(0, values.size - 1,
                                            min(points, values.size)).astype(np.int64))
                ax.plot(values[idx], (idx + 1) / values.size, label=name, linewidth=1.1)
            first = next(iter(runs.values()))
            ax.set_title(f"{group} ({_numel(first, keys):,} values)")
            ax.set_ylim(0, 1.01)
            ax.grid(alpha=0.3)
        for ax in axes[len(groups):]:
            ax.set_axis_off()
        axes[0].legend()
        fig.supxlabel("|parameter value|" if absolute else "parameter value", fontsize=9)
        fig.supylabel("CDF", fontsize=9)
        fig.tight_layout()
        return save_figure(fig, stem, formats)


def _numel(state: Mapping[str, Any], keys: Sequence[str]) -> int:
    return int(sum(np.prod(tuple(state[k].shape)) for k in keys))
