"""Training engine (``fit``, ``evaluate``) and run directories (``train_run``)."""

from uebench.train.classification import Callback, EpochContext, evaluate, fit

__all__ = ["Callback", "EpochContext", "evaluate", "fit"]
