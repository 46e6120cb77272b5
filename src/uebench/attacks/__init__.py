"""Unlearnable-example generators: ``run_attack(name, x, y, ...)``; ``ATTACKS.names()`` lists
them. The poison store (``save_poison``, ``load_poisoned``, imports/exports) is re-exported here."""

from uebench.attacks import dc, em, hypo, rem, tap  # noqa: F401 (registers surrogate attacks)

# isort: split
from uebench.attacks import ar, lsp, ops, random_noise  # noqa: F401 (registers the others)
from uebench.attacks.base import (
    ATTACKS,
    attack_info,
    enforce_budget,
    measure,
    register_attack,
    resolve_params,
    run_attack,
)
from uebench.attacks.interop import export_apbench, import_apbench, import_array
from uebench.attacks.store import load_delta, load_poisoned, read_manifest, save_poison

__all__ = [
    "ATTACKS", "attack_info", "enforce_budget", "measure", "register_attack", "resolve_params",
    "run_attack", "export_apbench", "import_apbench", "import_array", "load_delta", "load_poisoned",
    "read_manifest", "save_poison",
]
