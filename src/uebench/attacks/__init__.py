"""Unlearnable-example generators: ``run_attack(name, x, y, ...)`` returns δ,
``generate_poison(name, dataset=..., out=...)`` writes a poison directory; ``ATTACKS.names()``
lists them. The poison store itself is :mod:`uebench.poisons`."""

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
from uebench.attacks.generate import generate_poison

__all__ = [
    "ATTACKS", "attack_info", "enforce_budget", "generate_poison", "measure", "register_attack",
    "resolve_params", "run_attack",
]
