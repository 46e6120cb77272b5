"""PCA of an optimisation path (Ye et al., ICLR 2025, arXiv 2509.08058, App. A.4; Li et al.,
NeurIPS 2018, arXiv 1712.09913, §7).

The path matrix is ``M = snapshots - final`` (T x D, one row per recorded step). As in the paper
(scikit-learn ``PCA(n_components=min(M.shape))``) the principal directions are those of the
mean-centred rows; as in Li et al.'s code the path is then drawn as the projection of ``M`` (not
of the centred rows) on those directions, so the final model sits at the origin.

Two routes, equal up to rounding (tested):

- ``sklearn``: ``sklearn.decomposition.PCA(svd_solver="full")`` on the dense float64 matrix (a
  thin SVD: T x T and T x D factors, never D x D);
- ``gram``: the T x T Gram matrix of the centred rows, accumulated over column blocks in float64,
  then ``eigh``; directions ``V_k = Mc^T u_k / s_k``. Memory is O(T^2 + block + k D), so it also
  runs on trajectories streamed from disk
  (:func:`uebench.train.trajectory_store.iter_parameter_blocks`).

Sign convention (PCA signs are arbitrary): each direction is oriented so the first snapshot
(the initial weights) has a coordinate <= 0, i.e. paths run from left/bottom towards the origin.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from uebench.errors import UebenchError

Blocks = Callable[[], Iterator[tuple[slice, torch.Tensor]]]
DENSE_LIMIT_BYTES = 256 * 2**20  # "auto": the sklearn route while a float64 copy fits this


@dataclass(frozen=True)
class PathPCA:
    """Principal directions of a path.

    ``directions``: (k, D) float64, orthonormal rows (k = ``n_directions`` or fewer).
    ``explained_variance_ratio``: (min(T, D),) as sklearn's, summing to 1 (0s if the path is flat).
    ``coords``: (T, k) projection of ``snapshots - final`` on the directions.
    """

    directions: torch.Tensor
    explained_variance_ratio: np.ndarray
    coords: np.ndarray
    method: str


def dense_blocks(matrix: torch.Tensor, block_cols: int = 1 << 16) -> Blocks:
    """Column blocks of an in-memory (T, D) matrix, for the Gram route."""

    def blocks() -> Iterator[tuple[slice, torch.Tensor]]:
        for start in range(0, matrix.shape[1], block_cols):
            cols = slice(start, min(matrix.shape[1], start + block_cols))
            yield cols, matrix[:, cols].double()

    return blocks


def path_pca(matrix: torch.Tensor, final: torch.Tensor, *, n_directions: int = 4,
             method: str = "auto") -> PathPCA:
    """PCA of an in-memory path ``matrix`` (T, D) around ``final`` (D,).

    Args:
        matrix: snapshots, one row per recorded step (any float dtype).
        final: the weights the landscape is centred on (usually the last snapshot).
        n_directions: how many leading directions to return (the plots need 4).
        method: ``auto`` | ``sklearn`` | ``gram``.
    """
    if matrix.dim() != 2 or final.shape != (matrix.shape[1],):
        raise UebenchError(f"path_pca needs a (T, D) matrix and a (D,) final vector, got "
                           f"{tuple(matrix.shape)} and {tuple(final.shape)}")
    diff = matrix.double() - final.double()[None]
    if method == "auto":
        method = "sklearn" if diff.numel() * 8 <= DENSE_LIMIT_BYTES else "gram"
    if method == "sklearn":
        return _sklearn_pca(diff, n_directions)
    if method == "gram":
        return gram_pca(dense_blocks(diff), diff.shape, n_directions=n_directions)
    raise UebenchError(f"unknown PCA method {method!r}: use auto, sklearn or gram")


def _sklearn_pca(diff: torch.Tensor, n_directions: int) -> PathPCA:
    from sklearn.decomposition import PCA

    m = diff.numpy()
    pca = PCA(n_components=min(m.shape), svd_solver="full").fit(m)
    k = min(n_directions, pca.components_.shape[0])
    directions = torch.from_numpy(np.ascontiguousarray(pca.components_[:k]))
    ratio = np.nan_to_num(pca.explained_variance_ratio_.astype(np.float64))
    return _oriented(directions, ratio, diff.numpy() @ directions.numpy().T, "sklearn")


def gram_pca(blocks: Blocks, shape: tuple[int, int], *, n_directions: int = 4) -> PathPCA:
    """PCA from column blocks of ``M = snapshots - final`` (T x D), never holding M whole.

    ``blocks()`` must yield ``(columns, M[:, columns])`` covering all D columns; it is called
    twice (Gram matrix, then directions and coordinates).
    """
    t, d = shape
    mean_fix = np.eye(t) - np.full((t, t), 1.0 / t)  # centring the rows: Mc = C M
    gram = np.zeros((t, t))
    for _, block in blocks():
        b = block.double().numpy()
        gram += b @ b.T
    centred = mean_fix @ gram @ mean_fix  # Mc Mc^T = C (M M^T) C
    eigval, eigvec = np.linalg.eigh(centred)
    order = np.argsort(eigval)[::-1][: min(t, d)]
    eigval = np.clip(eigval[order], 0.0, None)
    total = eigval.sum()
    ratio = eigval / total if total > 0 else np.zeros_like(eigval)
    # only directions with non-zero variance are defined
    k = int(min(n_directions, np.sum(eigval > eigval[0] * 1e-12))) if total > 0 else 0
    u = eigvec[:, order[:k]] / np.sqrt(eigval[:k])[None]  # V_k = Mc^T u_k / s_k
    weights = mean_fix @ u
    directions = torch.zeros((k, d), dtype=torch.float64)
    coords = np.zeros((t, k))
    for cols, block in blocks():
        b = block.double().numpy()
        v = (b.T @ weights).T  # (k, b)
        directions[:, cols] = torch.from_numpy(v)
        coords += b @ v.T
    return _oriented(directions, ratio, coords, "gram")


def _oriented(directions: torch.Tensor, ratio: np.ndarray, coords: np.ndarray,
              method: str) -> PathPCA:
    signs = np.where(coords[0] > 0, -1.0, 1.0) if coords.shape[0] else np.ones(0)
    return PathPCA(directions * torch.from_numpy(signs)[:, None], ratio, coords * signs[None],
                   method)

