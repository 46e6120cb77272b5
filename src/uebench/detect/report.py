"""What a detection reports: the flagging rule and its threshold, one detector's reading and
the whole report, and the report's files (``detect.json`` and the sample scores)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from uebench.detect.base import DETECTORS
from uebench.utils.io import atomic_write_bytes, check_output_dir, write_json

SPREAD_FACTOR = 3.0  # threshold >= this many times the range of the clean references' values
RULE = ("flagged if any detector's score (statistic minus the mean over clean references) "
        f"exceeds its threshold = max(floor, {SPREAD_FACTOR:g} x range of the references)")


@dataclass(frozen=True)
class DetectorResult:
    """One detector's dataset-level reading (statistic in the detector's units)."""

    name: str
    statistic: str
    value: float
    reference: float | None
    references: list[float]
    score: float
    threshold: float
    flagged: bool
    seconds: float
    details: dict[str, float] = field(default_factory=dict)


@dataclass
class DetectReport:
    """What ``uebench detect`` found: per detector, the overall verdict and sample scores.

    ``samples`` maps a detector with sample-level scores to a float64 (N,) array in the order of
    the candidate's images (larger = more suspicious); ``indices`` are those images' indices in
    the full training split.
    """

    dataset: str
    n: int
    seed: int
    poison: str | None
    attack: str | None
    results: list[DetectorResult]
    reference_overlap: list[float]
    samples: dict[str, np.ndarray]
    indices: np.ndarray
    labels: np.ndarray
    seconds: float
    rule: str = RULE

    @property
    def flagged(self) -> bool:
        return any(r.flagged for r in self.results)

    @property
    def flagged_by(self) -> list[str]:
        return [r.name for r in self.results if r.flagged]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready report (``detect.json``) without the sample arrays."""
        return {
            "dataset": self.dataset, "n": self.n, "seed": self.seed, "poison": self.poison,
            "attack": self.attack, "flagged": self.flagged, "flagged_by": self.flagged_by,
            "rule": self.rule, "references": len(self.reference_overlap),
            "reference_overlap": self.reference_overlap, "seconds": self.seconds,
            "detectors": [{**asdict(r), "floor": DETECTORS.meta(r.name)["floor"],
                           "needs_reference": DETECTORS.meta(r.name)["needs_reference"],
                           "paper": DETECTORS.meta(r.name)["paper"]} for r in self.results],
            "sample_scores": {name: f"scores/{name}.npy" for name in self.samples},
        }


def threshold_for(floor: float, references: Sequence[float]) -> float:
    """max(floor, SPREAD_FACTOR x (max - min) of the references' values)."""
    spread = (max(references) - min(references)) if len(references) > 1 else 0.0
    return max(float(floor), SPREAD_FACTOR * float(spread))


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def write_report(report: DetectReport, out: str | Path) -> Path:
    """``out/detect.json`` (written last), ``out/scores/<detector>.npy`` (float64, N; larger =
    more suspicious), ``out/indices.npy`` (int64 indices into the full training split) and
    ``out/labels.npy`` (int64); plain arrays, readable with ``np.load(..., allow_pickle=False)``."""
    root = check_output_dir(out, marker="detect.json", what="a uebench detect report")
    (root / "scores").mkdir(parents=True, exist_ok=True)
    (root / "detect.json").unlink(missing_ok=True)  # incomplete until the new report is written
    for old in (root / "scores").glob("*.npy"):  # an earlier report's scores
        old.unlink()
    for name, values in report.samples.items():
        atomic_write_bytes(root / "scores" / f"{name}.npy", _npy(values.astype(np.float64)))
    atomic_write_bytes(root / "indices.npy", _npy(report.indices.astype(np.int64)))
    atomic_write_bytes(root / "labels.npy", _npy(report.labels.astype(np.int64)))
    write_json(root / "detect.json", report.to_dict())
    return root
