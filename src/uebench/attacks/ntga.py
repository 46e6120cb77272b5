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


def import_released(path: Path | str, **kwargs: Any) -> Any:
    """Import released NTGA poisoned images (``.npy``, N x H x W x C, uint8 or float in [0, 1]).

    A thin pointer to ``uebench.attacks.store.import_array(path, kind="images", ...)``; see that
    function for the remaining arguments (clean data, labels, attack name, budget).
    """
    from uebench.attacks import store  # imported lazily: the store is optional for generation

    return store.import_array(path, kind="images", **kwargs)
