"""The SAL engine registry. Engines register themselves where they are defined, with metadata.

An engine is ``fn(task: SALTask, **options) -> SALResult`` (SAL of Ye et al., ICLR 2025,
arXiv:2509.08058, Eq. 3). Register with :func:`register_engine`, which insists on the metadata
that reports and tests read, so nothing anywhere dispatches on engine names:

==================  ======  ===================================================================
key                 type    meaning
==================  ======  ===================================================================
``label``           str     short human label for tables and reports
``paper_parity``    bool    follows the official code's optimiser semantics (its UD is the
                            paper's kind of number); False = a different, labelled estimator
``default_origin``  str     origin used when the caller gives none (``official`` needs the
                            running train loss; run_sal falls back to ``exact`` without it)
``description``     str     one sentence: what the engine computes
``oracle``          bool    a plain reference implementation for tests and benchmarks, not
                            meant for production runs
``smoke_options``   dict    the engine's cheapest meaningful options (tests, ``smoke`` runs)
==================  ======  ===================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from uebench.learnability.task import ORIGINS  # the origin vocabulary lives with SALTask
from uebench.registry import Registry

EngineFn = Callable[..., Any]  # (task: SALTask, **options) -> SALResult
SAL_ENGINES: Registry[EngineFn] = Registry("sal engine")
ENGINE_META_KEYS = ("label", "paper_parity", "default_origin", "description", "oracle",
                    "smoke_options")


def register_engine(name: str, *, label: str, paper_parity: bool, default_origin: str,
                    description: str, oracle: bool = False,
                    smoke_options: Mapping[str, Any] | None = None) -> Callable[[EngineFn],
                                                                                 EngineFn]:
    """Decorator: ``@register_engine("fast", label=..., paper_parity=False, ...)``."""
    if default_origin not in ORIGINS:
        raise ValueError(f"default_origin must be one of {sorted(ORIGINS)}, got "
                         f"{default_origin!r}")
    return SAL_ENGINES.register(
        name, label=label, paper_parity=bool(paper_parity), default_origin=default_origin,
        description=description, oracle=bool(oracle), smoke_options=dict(smoke_options or {}),
    )

