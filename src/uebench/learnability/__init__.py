"""Learnability metrics of Ye et al., ICLR 2025 (arXiv:2509.08058): SAL per layer (this package's
``sal``/``compat``/``fast`` engines), the learnable threshold β (``threshold``), #LP and the
Unlearnable Distance (``distance``). See docs/sal.md.
"""

from uebench.learnability.sal import (
    SAL_ENGINES,
    SALCallback,
    cost_model,
    measure_sal,
    official_running_loss,
    run_sal,
)
from uebench.learnability.suffix import SuffixPlan
from uebench.learnability.task import SALData, SALResult, SALTask

__all__ = [
    "SAL_ENGINES", "SALCallback", "SALData", "SALResult", "SALTask", "SuffixPlan", "cost_model",
    "measure_sal", "official_running_loss", "run_sal",
]
