"""Multi-task data, models, losses, metrics and training (paper §3.4, arXiv:2509.08058).

Registries: :data:`MULTITASK_DATASETS` (``scenes``, ``taskonomy``, ``multi-fashion-mnist``,
``multi-mnist``), :data:`TASK_KINDS`, :data:`TASK_LOSSES`, :data:`TASK_METRICS`,
:data:`BACKBONES`. See docs/multitask.md.
"""

from uebench.multitask import multifashion, scenes, taskonomy  # noqa: F401  (registration)
from uebench.multitask.backbones import BACKBONES, register_backbone
from uebench.multitask.baselines import baseline_scores, constant_outputs
from uebench.multitask.dataset import (
    MULTITASK_DATASETS,
    MultiTaskSet,
    dataset_options,
    load_multitask,
    register_multitask_dataset,
)
from uebench.multitask.loader import MultiTaskLoader
from uebench.multitask.losses import TASK_LOSSES, multitask_loss, register_loss
from uebench.multitask.metrics import (
    TASK_METRICS,
    MetricAccumulator,
    TaskMetric,
    compute_metric,
    register_metric,
)
from uebench.multitask.model import MultiTaskNet, TaskView, build_multitask_model
from uebench.multitask.tasks import TASK_KINDS, TaskSpec
from uebench.multitask.train import (
    MultiTaskEpoch,
    check_task_specs,
    evaluate_multitask,
    fit_multitask,
)

__all__ = [
    "BACKBONES", "MULTITASK_DATASETS", "MetricAccumulator", "MultiTaskEpoch", "MultiTaskLoader",
    "MultiTaskNet", "MultiTaskSet", "TASK_KINDS", "TASK_LOSSES", "TASK_METRICS", "TaskMetric",
    "TaskSpec",
    "TaskView", "baseline_scores", "build_multitask_model", "check_task_specs", "compute_metric",
    "constant_outputs", "dataset_options",
    "evaluate_multitask", "fit_multitask", "load_multitask", "multitask_loss", "register_backbone",
    "register_loss", "register_metric", "register_multitask_dataset",
]
