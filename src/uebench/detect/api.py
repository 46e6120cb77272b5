"""``uebench detect``: is this training set an availability poison? (docs/detect.md)

Every registered detector (:data:`uebench.detect.base.DETECTORS`) measures its statistic on the
candidate set and on ``references`` clean subsets of the same dataset with the same size and
class counts, drawn with other seeds and disjoint from the candidate (and from each other) where
the split is large enough. Per detector:

- ``reference`` = the mean statistic over the clean references;
- ``score`` = candidate statistic - ``reference`` (a detector without a reference: the statistic);
- ``threshold`` = max(``floor``, :data:`SPREAD_FACTOR` x the range of the references' values):
  the references disagree among themselves by that range on clean data, and ``floor`` (declared
  by the detector) is the smallest gap counted at all (docs/detect.md, "The threshold");
- ``flagged`` = score > threshold (one-sided: a poison makes its set *easier*, noise harder).

The overall verdict flags the set if any detector flags it.
"""

from __future__ import annotations

import io
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from uebench.data.base import DATASETS, ImageSet, load_dataset, stratified_subset
from uebench.detect.base import DETECTORS, Measurement, check_options, run_detector
from uebench.errors import PoisonValidationError, UebenchError
from uebench.poisons.store import MANIFEST, load_poisoned, manifest_attack, read_manifest
from uebench.runtime import Runtime, derive_seed, resolve_device
from uebench.utils.io import atomic_write_bytes, check_output_dir, write_json

SPREAD_FACTOR = 3.0  # threshold >= this many times the range of the clean references' values
DEFAULT_REFERENCES = 2
RULE = ("flagged if any detector's score (statistic minus the mean over clean references) "
        f"exceeds its threshold = max(floor, {SPREAD_FACTOR:g} x range of the references)")
_REFERENCE_STREAM = 9100  # seed stream of the reference subsets and the detectors' seeds


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


def detector_runtime(seed: int, device: str | torch.device | None = "cpu") -> Runtime:
    """The runtime every detector runs with, on the candidate and on every reference alike
    (common random numbers: the same initial weights, halves and batch order, so a difference
    between them is the images', not the draws')."""
    return Runtime(device=resolve_device(device), seed=derive_seed(seed, _REFERENCE_STREAM),
                   progress=False)


def _check_names(detectors: Sequence[str] | None,
                 options: Mapping[str, Mapping[str, Any]] | None) -> list[str]:
    names = list(dict.fromkeys(DETECTORS.names() if detectors is None else detectors))
    if not names:
        raise UebenchError(f"no detector chosen; choose from {', '.join(DETECTORS.names())}")
    for name in names:
        DETECTORS.get(name)  # unknown names: the list of valid ones
    for name, opts in (options or {}).items():
        if name not in names:
            raise UebenchError(f"options given for detector {name!r}, which is not run "
                               f"(running {', '.join(names)})")
        check_options(name, opts)
    return names


def detect_sets(
    candidate: ImageSet,
    references: Sequence[ImageSet],
    *,
    detectors: Sequence[str] | None = None,
    seed: int = 0,
    device: str | torch.device | None = "cpu",
    options: Mapping[str, Mapping[str, Any]] | None = None,
    dataset: str = "",
    poison: str | None = None,
    attack: str | None = None,
    reference_overlap: Sequence[float] | None = None,
) -> DetectReport:
    """Run detectors on ``candidate`` and read each against the clean ``references``.

    Args:
        candidate: the training set under suspicion (uint8 N x C x H x W).
        references: clean sets of the same kind and size (at least one when a chosen detector
            needs a reference; two or more give the threshold its spread term).
        detectors: names (default: every registered detector).
        seed: the detectors' seed, the same for the candidate and every reference (common random
            numbers: the candidate and a reference differ by their images, not by the draws).
        device: where the detectors train (``cpu``: deterministic given ``seed``).
        options: per detector, keyword options (``{"simple": {"epochs": 10}}``).
        dataset, poison, attack, reference_overlap: recorded in the report.
    """
    names = _check_names(detectors, options)
    if candidate.num_classes < 2 or len(candidate) < 4 * candidate.num_classes:
        raise UebenchError(f"detect needs at least 4 images per class ({4 * candidate.num_classes}"
                           f" for {candidate.num_classes} classes), got {len(candidate)}: use a "
                           "larger --train-size")
    for ref in references:
        if ref.image_shape != candidate.image_shape or ref.classes != candidate.classes:
            raise UebenchError(f"a reference set ({ref.image_shape}, {ref.num_classes} classes) "
                               f"is not of the candidate's kind ({candidate.image_shape}, "
                               f"{candidate.num_classes} classes)")
    needs = [n for n in names if DETECTORS.meta(n)["needs_reference"]]
    if needs and not references:
        raise UebenchError(f"detectors {needs} read the candidate against clean references; "
                           "give at least one clean reference set")
    dev = resolve_device(device)
    t_all = time.perf_counter()
    results, samples = [], {}
    for name in names:
        meta = DETECTORS.meta(name)
        opts = dict((options or {}).get(name, {}))
        t0 = time.perf_counter()
        rt = detector_runtime(seed, dev)
        got: Measurement = run_detector(name, candidate, rt=rt, options=opts)
        refs: list[float] = []
        if meta["needs_reference"]:
            refs = [run_detector(name, ref, rt=rt, options=opts).value for ref in references]
        reference = float(np.mean(refs)) if refs else None
        score = got.value - reference if reference is not None else got.value
        threshold = threshold_for(meta["floor"], refs)
        results.append(DetectorResult(
            name, meta["statistic"], float(got.value), reference, [float(v) for v in refs],
            float(score), threshold, bool(score > threshold), time.perf_counter() - t0,
            {k: float(v) for k, v in got.details.items()}))
        if got.samples is not None:
            samples[name] = np.asarray(got.samples, dtype=np.float64)
    return DetectReport(
        dataset=dataset or candidate.name, n=len(candidate), seed=seed, poison=poison,
        attack=attack, results=results,
        reference_overlap=[float(v) for v in (reference_overlap or [0.0] * len(references))],
        samples=samples, indices=candidate.indices.numpy().astype(np.int64),
        labels=candidate.y.numpy().astype(np.int64), seconds=time.perf_counter() - t_all)


def reference_indices(y: torch.Tensor, taken: torch.Tensor, *, seed: int,
                      count: int) -> list[torch.Tensor]:
    """``count`` index sets into a split with labels ``y``, each with the class counts of
    ``taken``, drawn with seeds derived from ``seed``: disjoint from ``taken`` and from each other
    while the unused images of every class suffice, else drawn from the whole split."""
    want = torch.bincount(y[taken], minlength=int(y.max()) + 1)
    used = torch.zeros(len(y), dtype=torch.bool)
    used[taken] = True
    out = []
    for k in range(count):
        rng = np.random.default_rng(derive_seed(seed, _REFERENCE_STREAM, 100 + k))
        free = all(int((~used & (y == c)).sum()) >= int(m) for c, m in enumerate(want))
        picks = []
        for c, m in enumerate(want.tolist()):
            pool = torch.nonzero((y == c) & ~used if free else (y == c)).flatten().numpy()
            picks.append(rng.choice(pool, size=m, replace=False))
        pick = torch.from_numpy(np.sort(np.concatenate(picks))).long()
        used[pick] = True
        out.append(pick)
    return out


@dataclass(frozen=True)
class Target:
    """What ``uebench detect DATA [--poison DIR]`` resolves to."""

    dataset: str
    train_size: int | None
    seed: int
    poison: Path | None


def resolve_target(data: str | Path, *, poison: str | Path | None, train_size: int | None,
                   seed: int | None) -> Target:
    """DATA is a dataset name, or a poison directory (its manifest gives dataset, size and seed).

    With a poison, a size or seed left out is the poison's. Refuses a DATA that is neither, and a
    ``--poison`` made for another dataset (another subset is refused when it is loaded).
    """
    text, path = str(data), Path(data)
    if text in DATASETS:
        if poison is None:
            return Target(text, train_size, 0 if seed is None else seed, None)
        return _poison_target(Path(poison), text, train_size, seed)
    if not path.exists():
        raise UebenchError(
            f"{text!r} is neither a dataset ({', '.join(DATASETS.names())}) nor a poison "
            "directory: pass a dataset name, e.g. `uebench detect fashion-mnist --train-size "
            "2000`, or a directory made by `uebench poison generate`")
    if not (path.is_dir() and (path / MANIFEST).is_file()):
        raise UebenchError(
            f"{path} is neither a dataset name nor a poison directory (it has no {MANIFEST}): "
            f"pass a dataset name ({', '.join(DATASETS.names())}; files of one go with "
            "--data-dir DIR), or a directory made by `uebench poison generate`")
    if poison is not None:
        raise UebenchError(f"DATA {path} is already a poison directory: give the poison either "
                           "as DATA or as --poison with the dataset name as DATA")
    return _poison_target(path, None, train_size, seed)


def _poison_target(poison: Path, dataset: str | None, train_size: int | None,
                   seed: int | None) -> Target:
    manifest = read_manifest(poison)  # not a poison: the message says so and how to make one
    made = (manifest["dataset"], manifest["n"], manifest.get("seed") or 0)
    if dataset is not None and made[0] != dataset:
        raise PoisonValidationError(
            f"{poison} was made for dataset {made[0]!r} ({made[1]} images, subset seed "
            f"{made[2]}), not {dataset!r}: run `uebench detect {made[0]} --train-size {made[1]} "
            f"--seed {made[2]} --poison {poison}` (or `uebench detect {poison}`)")
    # what is left out comes from the manifest; what is given must match it (load_poisoned
    # refuses another subset and names the flags to pass)
    return Target(made[0], made[1] if train_size is None else train_size,
                  made[2] if seed is None else seed, poison)


def detect(
    data: str | Path,
    *,
    poison: str | Path | None = None,
    train_size: int | None = None,
    data_dir: str | Path | None = None,
    seed: int | None = None,
    detectors: Sequence[str] | None = None,
    references: int = DEFAULT_REFERENCES,
    device: str | torch.device | None = "cpu",
    options: Mapping[str, Mapping[str, Any]] | None = None,
    out: str | Path | None = None,
    threads: int | None = None,
) -> DetectReport:
    """Detect an availability poison in a training set (mirrors ``uebench detect``).

    Args:
        data: a dataset name (``uebench datasets``) or a poison directory (then dataset, size
            and subset seed come from its manifest).
        poison: a poison directory made for ``data``'s subset: the detectors run on the poisoned
            set (without it, on the clean subset).
        train_size, data_dir, seed: the (sub)set, as for ``uebench train`` (seed 0 by default;
            it also seeds the detectors).
        detectors: names (default: all registered, ``uebench detect --list``).
        references: clean reference subsets (same size and class counts, other seeds, disjoint
            from the candidate where the split allows).
        device: ``cpu`` (default; deterministic given ``seed``), ``cuda`` or ``auto``.
        options: per detector, keyword options (``{"simple": {"epochs": 10}}``).
        out: if given, write ``detect.json`` and the sample scores there (:func:`write_report`).
        threads: torch CPU threads while detecting (restored afterwards); ``None``: unchanged.
            The detectors' models are small: one thread is about as fast as several on an idle
            machine and much faster on a busy one.
    """
    names = _check_names(detectors, options)
    if references < 0:
        raise UebenchError(f"--references must be >= 0, got {references}")
    if threads is not None and threads < 1:
        raise UebenchError(f"--threads must be >= 1, got {threads}")
    needs = [n for n in names if DETECTORS.meta(n)["needs_reference"]]
    if needs and references == 0:
        raise UebenchError(f"detectors {needs} read the set against clean references: use "
                           "--references 1 or more (default 2)")
    if out is not None:
        check_output_dir(out, marker="detect.json", what="a uebench detect report")
    target = resolve_target(data, poison=poison, train_size=train_size, seed=seed)
    resolve_device(device)
    full = load_dataset(target.dataset, data_dir=data_dir).train
    if target.train_size is not None and target.train_size > len(full):
        raise UebenchError(f"--train-size {target.train_size} is larger than {target.dataset}'s "
                           f"training split ({len(full)} images)")
    if target.train_size is not None and target.train_size < len(full):
        taken = stratified_subset(full.y, target.train_size, target.seed)
    else:
        taken = torch.arange(len(full))
    clean = full.subset(taken)
    attack = None
    if target.poison is not None:
        candidate = load_poisoned(target.poison, clean)  # refuses another subset, names the fix
        attack = manifest_attack(read_manifest(target.poison))
    else:
        candidate = clean
    picks = reference_indices(full.y, taken, seed=target.seed, count=references)
    overlap = [float(np.isin(p.numpy(), taken.numpy()).mean()) for p in picks]
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        report = detect_sets(
            candidate, [full.subset(p) for p in picks], detectors=names, seed=target.seed,
            device=device, options=options, dataset=target.dataset,
            poison=str(target.poison) if target.poison is not None else None, attack=attack,
            reference_overlap=overlap)
    finally:
        torch.set_num_threads(old_threads)
    if out is not None:
        write_report(report, out)
    return report


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
