"""Loss-landscape explanations (Ye et al., ICLR 2025, arXiv 2509.08058, §3.1, App. A.3-A.5):
trajectory recording, PCA of the path, loss surfaces, parameter CDFs and ``plot_all``.

See docs/landscape.md.
"""

from uebench.landscape.bases import BASES
from uebench.landscape.compute import landscape
from uebench.landscape.experiments import run_lenet, run_toy
from uebench.landscape.pca import PathPCA, gram_pca, path_pca
from uebench.landscape.plot_all import plot_all
from uebench.landscape.record import record_run
from uebench.landscape.store import Trajectory, TrajectoryError, has_trajectory, load_trajectory
from uebench.landscape.surface import evaluate_points, evaluate_points_loop
from uebench.landscape.trajectory import TrajectoryRecorder, default_every, recorder_for_run

__all__ = [
    "BASES", "PathPCA", "Trajectory", "TrajectoryError", "TrajectoryRecorder", "default_every",
    "evaluate_points", "evaluate_points_loop", "gram_pca", "has_trajectory", "landscape",
    "load_trajectory", "path_pca", "plot_all", "record_run", "recorder_for_run", "run_lenet",
    "run_toy",
]
