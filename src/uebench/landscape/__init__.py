"""Loss-landscape explanations (Ye et al., ICLR 2025, arXiv 2509.08058, §3.1, App. A.3-A.5):
PCA of the recorded path, loss surfaces, parameter CDFs and ``plot_all``. The path itself is
recorded while training (:mod:`uebench.train.trajectory`, re-exported here).

See docs/landscape.md.
"""

from uebench.landscape.bases import BASES
from uebench.landscape.compute import landscape
from uebench.landscape.experiments import run_lenet, run_toy
from uebench.landscape.pca import PathPCA, gram_pca, path_pca
from uebench.landscape.plot_all import plot_all
from uebench.landscape.record import record_run
from uebench.landscape.surface import evaluate_points, evaluate_points_loop
from uebench.train.trajectory import TrajectoryRecorder, default_every, recorder_for_run
from uebench.train.trajectory_store import (
    Trajectory,
    TrajectoryError,
    has_trajectory,
    load_trajectory,
)

__all__ = [
    "BASES", "PathPCA", "Trajectory", "TrajectoryError", "TrajectoryRecorder", "default_every",
    "evaluate_points", "evaluate_points_loop", "gram_pca", "has_trajectory", "landscape",
    "load_trajectory", "path_pca", "plot_all", "record_run", "recorder_for_run", "run_lenet",
    "run_toy",
]
