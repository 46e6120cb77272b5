"""How alike the SAL of several tasks is: the cosine similarity of their SAL matrices and its heat
map (paper Fig. 4a).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from uebench.learnability.plots import save_figure
from uebench.learnability.threshold import SalDataError, as_sal_matrix

__all__ = ["plot_task_similarity", "sal_cosine_similarity"]


def sal_cosine_similarity(matrix_by_task: Mapping[str, Any]) -> tuple[list[str], np.ndarray]:
    """Cosine similarity between tasks' flattened (epochs × layers) SAL matrices (Fig. 4a).

    Every task's matrix (array or rows) must have the same shape. A task whose SAL vector is all
    zeros has no direction: its similarities are ``nan``.
    """
    names = list(matrix_by_task)
    if not names:
        raise ValueError("sal_cosine_similarity needs at least one task")
    mats = [as_sal_matrix(matrix_by_task[n], name=str(n))[0] for n in names]
    shapes = {m.shape for m in mats}
    if len(shapes) > 1:
        raise SalDataError(f"tasks have different SAL matrix shapes {sorted(shapes)}: use the same "
                           "epochs and layers for every task (e.g. truncate to the shortest run)")
    vectors = np.stack([m.ravel() for m in mats])
    norms = np.linalg.norm(vectors, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sim = (vectors @ vectors.T) / np.outer(norms, norms)
    sim[norms == 0, :] = np.nan
    sim[:, norms == 0] = np.nan
    return [str(n) for n in names], sim


def plot_task_similarity(matrix_by_task: Mapping[str, Any], path: Path | str) -> Path:
    """Heat map of :func:`sal_cosine_similarity` between tasks, values written in the cells."""
    names, sim = sal_cosine_similarity(matrix_by_task)
    n = len(names)
    fig = Figure(figsize=(1.0 * n + 2.5, 0.9 * n + 1.5))
    ax = fig.subplots()
    finite = sim[np.isfinite(sim)]
    vmin = min(0.0, float(finite.min())) if finite.size else 0.0
    image = ax.imshow(np.ma.masked_invalid(sim), cmap="viridis", vmin=vmin, vmax=1.0)
    for i in range(n):
        for j in range(n):
            text = "–" if not np.isfinite(sim[i, j]) else f"{sim[i, j]:.2f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if np.isfinite(sim[i, j]) and sim[i, j] < 0.6 else "black")
    ax.set_xticks(range(n))
    ax.set_xticklabels(names, rotation=45, ha="right")
    ax.set_yticks(range(n))
    ax.set_yticklabels(names)
    ax.set_title("cosine similarity of SAL vectors", fontsize=10)
    fig.colorbar(image, ax=ax)
    return save_figure(fig, path)
