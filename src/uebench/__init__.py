"""uebench: how far is this protected data from true unlearnability?

Public API (mirrors the ``uebench`` CLI):

- ``load_dataset(name, ...)`` / ``DATASETS`` - datasets as in-memory uint8 tensors
- ``get_model(name, ...)`` / ``MODELS`` - model zoo with in-model normalization
- ``fit(...)`` / ``train_run(...)`` - the training engine and run directories
- ``run_attack`` / ``generate_poison`` - unlearnable examples (``uebench poison generate``)
- ``import_poison`` / ``export_poison`` / ``load_poisoned`` - the poison store (``uebench poison``)
- ``measure_sal(...)`` / ``SALCallback`` - per-layer Sharpness-Aware Learnability (Eq. 3)
- ``measure_run(...)`` (``uebench sal``) - SAL after training, from per-epoch snapshots
- ``evaluate(...)`` (Algorithm 1) / ``recompute(...)`` (``uebench ud``) - beta, #LP, UD
"""

from uebench.attacks import ATTACKS, generate_poison, run_attack
from uebench.config import resolve_run_cfg
from uebench.data import DATASETS, ImageSet, load_dataset
from uebench.evaluation import evaluate
from uebench.learnability import SALCallback, measure_sal
from uebench.learnability.posthoc import measure_run
from uebench.learnability.report import recompute
from uebench.models import MODELS, get_model, layer_names
from uebench.poisons import export_poison, import_poison, load_poisoned
from uebench.runtime import Runtime
from uebench.train import fit
from uebench.train.run import train_run
from uebench.version import __version__ as __version__

__all__ = [
    "ATTACKS", "DATASETS", "MODELS", "ImageSet", "Runtime", "SALCallback", "evaluate",
    "export_poison", "fit", "generate_poison", "get_model", "import_poison", "layer_names",
    "load_dataset", "load_poisoned", "measure_run", "measure_sal", "recompute", "resolve_run_cfg",
    "run_attack", "train_run",
]
