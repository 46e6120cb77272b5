"""uebench: how far is this protected data from true unlearnability?

Public API (mirrors the ``uebench`` CLI):

- ``load_dataset(name, ...)`` / ``DATASETS`` - datasets as in-memory uint8 tensors
- ``get_model(name, ...)`` / ``MODELS`` - model zoo with in-model normalization
- ``fit(...)`` / ``train_run(...)`` - the training engine and run directories
"""

from uebench.data import DATASETS, ImageSet, load_dataset
from uebench.models import MODELS, get_model, layer_names
from uebench.runtime import Runtime

__version__ = "0.1.0"

__all__ = ["DATASETS", "MODELS", "ImageSet", "Runtime", "get_model", "layer_names", "load_dataset"]
