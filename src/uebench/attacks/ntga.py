"""NTGA (neural tangent generalization attack): import only, not a registered attack.

Yuan and Wu, "Neural Tangent Generalization Attacks", ICML 2021 (lionelmessi6410/ntga).

NTGA crafts linf poisons (PGD with ``eps_iter`` = 1.1 eps / 10, 10 iterations, blocks of 512,
t = 64) against the neural-tangent kernel of an infinite-width CNN (JAX neural-tangents:
ConvGroup(2, 64) -> Dense 384 -> 192 -> C). That stack needs an old JAX (``jax.api``,
``jax.config``) that no longer installs; APBench commented its import out in January 2025 and
its maintainers point to the released poisons (APBench issue #2: CIFAR-10, MNIST and 2-class
ImageNet as ``.npy`` arrays of poisoned images). uebench therefore does not generate NTGA; it
imports the released arrays as stored poisons through the poison store, which recovers
``delta`` against the clean images of the same split (same order) and checks the budget.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from uebench.data.base import ImageSet
from uebench.poisons import import_array


def import_released(
    path: Path | str, clean: ImageSet, *, dataset: str, out_dir: Path | str,
    eps: float | None = 8 / 255,
) -> dict[str, Any]:
    """Store released NTGA poisoned images as a uebench poison (``attack="ntga"``).

    A thin pointer to ``uebench.poisons.import_array(path, clean, kind="images", ...)``
    with NTGA's linf budget declared.

    Args:
        path: ``.npy`` of poisoned images (N x H x W x C or N x C x H x W; uint8, or float in
            [0, 1]) in the order of ``clean``.
        clean: the clean training split the poison was made from (same order).
        dataset, out_dir: recorded dataset name and the new poison directory.
        eps: the release's linf radius (8/255 for CIFAR-10; MNIST releases used 0.3), checked
            before storing; ``None`` skips the check.

    Returns:
        The poison's manifest.
    """
    return import_array(path, clean, attack="ntga", dataset=dataset, out_dir=out_dir,
                        norm="linf", eps=eps, kind="images", preset="released")
