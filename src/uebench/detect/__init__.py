"""Detectors of availability poisons: ``uebench detect`` / :func:`detect` (docs/detect.md).

Each detector is one file registering itself in :data:`DETECTORS` (``simple``: simple networks'
held-out accuracy, Zhu et al., AAAI 2024; ``template``: class-template accuracy on high-pass
residuals; ``loss_slope``: how fast a small CNN's loss falls). Nothing outside the CLI (and the
bench) imports this package.
"""

from uebench.detect import loss_slope, simple, template  # noqa: F401 (registers)
from uebench.detect.api import detect, detect_sets
from uebench.detect.base import DETECTORS, Measurement, register_detector
from uebench.detect.report import DetectorResult, DetectReport, write_report
from uebench.detect.target import reference_indices

__all__ = ["DETECTORS", "DetectReport", "DetectorResult", "Measurement", "detect", "detect_sets",
           "reference_indices", "register_detector", "write_report"]
