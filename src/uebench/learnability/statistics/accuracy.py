"""The accuracy-side references of the unlearnable-examples literature: the final and the peak
test accuracy (clean test data) of the model trained on the run's training data. A poison that
works lowers both; the peak catches a poison whose effect appears only late (or a model that
learned the clean features first and then forgot them)."""

from __future__ import annotations

from uebench.learnability.distance import as_named_run, final_test_acc
from uebench.learnability.statistics.base import Pair, register_statistic


@register_statistic("acc", label="test acc (%)",
                    order=60, less="lower", reads="accuracy", scale=100,
                    digits=2, description="test accuracy on clean test data after training")
def acc(pair: Pair) -> float | None:
    return final_test_acc(as_named_run(pair.run))


@register_statistic("peak_acc", label="peak test acc (%)",
                    order=61, less="lower", reads="accuracy",
                    scale=100, digits=2,
                    description="highest per-epoch test accuracy on clean test data")
def peak_acc(pair: Pair) -> float | None:
    values = [float(r["test_acc"]) for r in pair.run.rows
              if isinstance(r.get("test_acc"), (int, float))]
    return max(values) if values else None
