"""Multi-task data, models, losses, metrics, training runs, per-task SAL / UD (paper §3.4,
arXiv:2509.08058).

Registries: :data:`MULTITASK_DATASETS` (``scenes``, ``taskonomy``, ``multi-fashion-mnist``,
``multi-mnist``), :data:`TASK_KINDS`, :data:`TASK_LOSSES`, :data:`TASK_METRICS`,
:data:`BACKBONES`; poisons: :mod:`.generate` (``MULTITASK_ATTACKS``), :mod:`.em`; the cross-task
matrix: :mod:`.cross`; figures: :mod:`.plots`; commands: :mod:`.cli`. See docs/multitask.md.
"""

from uebench.multitask import multifashion, scenes, taskonomy  # noqa: F401  (registration)
from uebench.multitask.backbones import BACKBONES, register_backbone
from uebench.multitask.baselines import baseline_scores, constant_outputs
from uebench.multitask.config import (
    MultiTaskRunCfg,
    load_multitask_config,
    resolve_multitask_cfg,
)
from uebench.multitask.dataset import (
    MULTITASK_DATASETS,
    MultiTaskSet,
    dataset_options,
    load_multitask,
    register_multitask_dataset,
)
from uebench.multitask.loader import MultiTaskLoader
from uebench.multitask.losses import TASK_LOSSES, multitask_loss, register_loss, sample_loss
from uebench.multitask.metrics import (
    TASK_METRICS,
    MetricAccumulator,
    TaskMetric,
    compute_metric,
    register_metric,
)
from uebench.multitask.model import MultiTaskNet, TaskView, build_multitask_model
from uebench.multitask.poisons import as_image_set, load_poisoned_multitask
from uebench.multitask.report import multitask_report, task_similarity
from uebench.multitask.run import load_multitask_splits, train_multitask_run
from uebench.multitask.sal import TaskSALCallback, measure_task_sal
from uebench.multitask.tasks import TASK_KINDS, TaskSpec
from uebench.multitask.train import (
    MultiTaskEpoch,
    check_task_specs,
    evaluate_multitask,
    fit_multitask,
)

__all__ = [
    "BACKBONES", "MULTITASK_DATASETS", "MetricAccumulator", "MultiTaskEpoch", "MultiTaskLoader",
    "MultiTaskNet", "MultiTaskRunCfg", "MultiTaskSet", "TASK_KINDS", "TASK_LOSSES",
    "TASK_METRICS", "TaskMetric", "TaskSALCallback", "TaskSpec", "TaskView", "as_image_set",
    "baseline_scores", "build_multitask_model", "check_task_specs", "compute_metric",
    "constant_outputs", "dataset_options", "evaluate_multitask", "fit_multitask",
    "load_multitask", "load_multitask_config", "load_multitask_splits", "load_poisoned_multitask",
    "measure_task_sal", "multitask_loss", "multitask_report", "register_backbone",
    "register_loss", "register_metric", "register_multitask_dataset", "resolve_multitask_cfg",
    "sample_loss", "task_similarity", "train_multitask_run",
]
