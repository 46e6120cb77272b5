"""uebench: how far is this protected data from true unlearnability?

Public API (mirrors the ``uebench`` CLI):

- ``load_dataset(name, ...)`` / ``DATASETS`` - datasets as in-memory uint8 tensors
- ``get_model(name, ...)`` / ``MODELS`` - model zoo with in-model normalization
- ``fit(...)`` / ``train_run(...)`` - the training engine and run directories
- ``run_attack(...)`` / ``generate_poison(...)`` / ``load_poisoned(...)`` - unlearnable examples
- ``measure_sal(...)`` / ``SALCallback`` - per-layer Sharpness-Aware Learnability (Eq. 3)
- ``evaluate(...)`` (Algorithm 1) / ``recompute(...)`` (``uebench ud``) - beta, #LP, UD
"""

from uebench.attacks import ATTACKS, run_attack
from uebench.attacks.store import load_poisoned
from uebench.data import DATASETS, ImageSet, load_dataset
from uebench.evaluate import evaluate
from uebench.learnability import SALCallback, measure_sal
from uebench.learnability.report import recompute
from uebench.models import MODELS, get_model, layer_names
from uebench.poison import generate_poison
from uebench.runtime import Runtime
from uebench.train import fit
from uebench.train.run import resolve_run_cfg, train_run

__version__ = "0.1.0"

__all__ = [
    "ATTACKS", "DATASETS", "MODELS", "ImageSet", "Runtime", "SALCallback", "evaluate", "fit",
    "generate_poison", "get_model", "layer_names", "load_dataset", "load_poisoned", "measure_sal",
    "recompute", "resolve_run_cfg", "run_attack", "train_run",
]
