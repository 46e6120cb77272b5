"""Unlearnable-example generators: ``run_attack(name, x, y, ...)``; ``ATTACKS.names()`` lists them."""

from uebench.attacks import dc, em, hypo, rem, tap  # noqa: F401 (registers surrogate attacks)
from uebench.attacks.base import (
    ATTACKS,
    attack_info,
    enforce_budget,
    measure,
    register_attack,
    resolve_params,
    run_attack,
)

__all__ = [
    "ATTACKS", "attack_info", "enforce_budget", "measure", "register_attack", "resolve_params",
    "run_attack",
]
