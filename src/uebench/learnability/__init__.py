"""Learnability metrics of Ye et al., ICLR 2025 (arXiv:2509.08058): SAL per layer (this package's
``sal``/``compat``/``fast`` engines), the learnable threshold β (``threshold``), #LP and the
Unlearnable Distance (``distance``). See docs/sal.md.
"""

from uebench.learnability.sal import (
    SAL_ENGINES,
    SALCallback,
    cost_model,
    measure_sal,
    run_sal,
)
from uebench.learnability.suffix import SALResult, SALTask, SuffixPlan

__all__ = [
    "SAL_ENGINES", "SALCallback", "SALResult", "SALTask", "SuffixPlan", "cost_model",
    "measure_sal", "run_sal",
]
