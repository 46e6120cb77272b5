"""The empirical CDF of a model's parameter values (paper appendix A.3, Fig. 9), and the flattened
values it is drawn from, which the per-layer CDFs of :mod:`uebench.landscape.cdf` use too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from uebench.learnability.plots import save_figure

__all__ = ["parameter_values", "plot_parameter_cdf"]

_BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


def parameter_values(model_or_state_dict: Any, *, absolute: bool = False) -> np.ndarray:
    """All parameter values of a model (``named_parameters``) or state dict, flattened, float64.

    From a state dict every floating entry is used except BatchNorm running statistics,
    ``num_batches_tracked`` and the input-normalisation buffers (``normalize.mean/std``), i.e. the
    trainable parameters. A bare array is used as is.
    """
    obj = model_or_state_dict
    if hasattr(obj, "named_parameters"):
        tensors = [p for _, p in obj.named_parameters()]
    elif isinstance(obj, Mapping):
        tensors = [
            v for k, v in obj.items()
            if not str(k).endswith(_BUFFER_SUFFIXES) and not str(k).startswith("normalize.")
            and np.issubdtype(_as_array(v).dtype, np.floating)
        ]
    else:
        tensors = [obj]
    if not tensors:
        raise ValueError("no floating-point parameters found")
    flat = np.concatenate([_as_array(t).astype(np.float64).ravel() for t in tensors])
    return np.abs(flat) if absolute else flat


def _as_array(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # torch tensor, without importing torch here
        return value.detach().float().cpu().numpy()
    return np.asarray(value)


def plot_parameter_cdf(
    models_or_state_dicts: Mapping[str, Any] | Sequence[tuple[str, Any]],
    path: Path | str,
    *,
    absolute: bool = False,
    points: int = 2000,
) -> Path:
    """Empirical CDF of parameter values, one curve per model (paper appendix A.3, Fig. 9).

    Args:
        models_or_state_dicts: ``{name: nn.Module | state_dict | array}`` (or (name, obj) pairs).
        path: the PNG to write.
        absolute: plot the CDF of |value| instead of the signed value.
        points: the curve is drawn through this many evenly spaced order statistics (exact CDF
            values at those points), so 11M-parameter models stay cheap.
    """
    items = list(models_or_state_dicts.items()) if isinstance(models_or_state_dicts, Mapping) \
        else list(models_or_state_dicts)
    if not items:
        raise ValueError("plot_parameter_cdf needs at least one model")
    fig = Figure(figsize=(6, 4.2))
    ax = fig.subplots()
    for name, obj in items:
        values = np.sort(parameter_values(obj, absolute=absolute))
        idx = np.unique(np.linspace(0, values.size - 1, min(points, values.size)).astype(np.int64))
        ax.plot(values[idx], (idx + 1) / values.size, label=f"{name} ({values.size:,} params)")
    ax.set_xlabel("|parameter value|" if absolute else "parameter value")
    ax.set_ylabel("CDF")
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)

