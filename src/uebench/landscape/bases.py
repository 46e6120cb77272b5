"""Plane bases for landscape plots, looked up by name (``pca`` | ``random``).

A basis gives ``k`` directions in the space of the recorded parameters and says how to place the
optimisation path in each plane. ``pca`` follows the paper (Ye et al., ICLR 2025,
arXiv 2509.08058, §3.1 / App. A.4): principal directions of ``snapshots - final``.
``random`` is Li et al.'s filter-normalised random basis (NeurIPS 2018, arXiv 1712.09913), in
which a path looks like a random walk (their §7: random directions are nearly orthogonal to it);
it shows the shape of the minimum instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from uebench.landscape.directions import flatten, random_directions, unflatten
from uebench.landscape.pca import Blocks, dense_blocks, gram_pca, path_pca
from uebench.landscape.runs import LandscapeRun
from uebench.registry import Registry
from uebench.train import trajectory_store as store

DENSE_LOAD_BYTES = 512 * 2**20  # load a trajectory whole below this size, else stream it


@dataclass(frozen=True)
class Basis:
    """``directions``: k vectors (D,) over ``names``; ``labels``: axis names (e.g. "PC1");
    ``explained``: PCA explained-variance ratios (all components) or None; ``min_extent``: the
    grid reaches at least +-this along every axis (0 = fit the path only)."""

    directions: list[torch.Tensor]
    labels: list[str]
    explained: np.ndarray | None
    min_extent: float


BasisFn = Callable[[LandscapeRun, "PathSource", int, int], Basis]
BASES: Registry[BasisFn] = Registry("landscape basis")


class PathSource:
    """A run's recorded path as column blocks of ``snapshots - final`` (T x D)."""

    def __init__(self, run: LandscapeRun) -> None:
        index = store.read_index(run.path)
        self.run_dir = run.path
        self.names: list[str] = list(index["names"])
        self.shapes = [tuple(s) for s in index["shapes"]]
        self.final = flatten(run.final(self.names), self.names).double()
        self.rows = sum(c["count"] for c in index["chunks"])
        self.steps: np.ndarray = np.zeros(0, dtype=np.int64)
        self.dense: torch.Tensor | None = None
        if self.rows * self.final.numel() * 8 <= DENSE_LOAD_BYTES:
            traj = store.load_trajectory(run.path, dtype=torch.float64)
            self.dense, self.steps = traj.matrix - self.final[None], traj.steps
        else:
            self.steps = np.concatenate([
                store.read_chunk(run.path, c, self.names[:1])[0].numpy() for c in index["chunks"]
            ])

    @property
    def shape(self) -> tuple[int, int]:
        return self.rows, int(self.final.numel())

    def blocks(self) -> Blocks:
        if self.dense is not None:
            return dense_blocks(self.dense)

        def streamed() -> Iterator[tuple[slice, torch.Tensor]]:
            for cols, block in store.iter_parameter_blocks(self.run_dir):
                yield cols, block - self.final[cols][None]

        return streamed

    def project(self, directions: Sequence[torch.Tensor]) -> np.ndarray:
        """Least-squares coordinates (T, k) of the path in the span of ``directions``."""
        basis = torch.stack([d.double() for d in directions])
        rhs = torch.zeros((len(directions), self.rows), dtype=torch.float64)
        for cols, block in self.blocks()():
            rhs += basis[:, cols] @ block.T
        # pinv: a zero direction (e.g. a model of 1-D tensors only) must not crash the plot
        return (torch.linalg.pinv(basis @ basis.T) @ rhs).T.numpy()


@BASES.register("pca", description="principal directions of the path (paper §3.1, App. A.4)")
def pca_basis(run: LandscapeRun, path: PathSource, count: int, seed: int) -> Basis:
    if path.dense is not None:
        result = path_pca(path.dense, torch.zeros(path.shape[1], dtype=torch.float64),
                          n_directions=count)
    else:
        result = gram_pca(path.blocks(), path.shape, n_directions=count)
    directions = [result.directions[i].clone() for i in range(result.directions.shape[0])]
    labels = [f"PC{i + 1}" for i in range(len(directions))]
    return Basis(directions, labels, result.explained_variance_ratio, 0.0)


@BASES.register("random", description="filter-normalised Gaussian directions (Li et al. 2018)")
def random_basis(run: LandscapeRun, path: PathSource, count: int, seed: int) -> Basis:
    final = unflatten(path.final, path.names, path.shapes)
    dirs = random_directions(final, count, seed=seed)
    directions = [flatten(d, path.names).double() for d in dirs]
    # filter-normalised units: +-1 moves every filter by its own norm (the authors' default grid)
    return Basis(directions, [f"dir{i + 1}" for i in range(count)], None, 1.0)
