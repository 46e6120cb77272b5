"""Model zoo: ``get_model(name, ...)``; ``MODELS.names()`` lists every registered model."""

from uebench.models import lenet, linear, resnet, senet, tiny, vit  # noqa: F401 (registers)
from uebench.models.base import (
    MODELS,
    Classifier,
    Normalize,
    get_model,
    layer_names,
    register_model,
)

__all__ = ["MODELS", "Classifier", "Normalize", "get_model", "layer_names", "register_model"]
