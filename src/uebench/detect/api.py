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

The overall verdict flags the set if any detector flags it. The rule, the results and their
files are in :mod:`uebench.detect.report`; what DATA names and the sets it is read on, in
:mod:`uebench.detect.target`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from uebench.data.base import ImageSet
from uebench.detect.base import DETECTORS, Measurement, check_options, run_detector
from uebench.detect.report import DetectorResult, DetectReport, threshold_for, write_report
from uebench.detect.target import REFERENCE_STREAM, load_target_sets, resolve_target
from uebench.errors import UebenchError
from uebench.runtime import Runtime, derive_seed, resolve_device
from uebench.utils.io import check_output_dir

DEFAULT_REFERENCES = 2


def detector_runtime(seed: int, device: str | torch.device | None = "cpu") -> Runtime:
    """The runtime every detector runs with, on the candidate and on every reference alike
    (common random numbers: the same initial weights, halves and batch order, so a difference
    between them is the images', not the draws')."""
    return Runtime(device=resolve_device(device), seed=derive_seed(seed, REFERENCE_STREAM),
                   progress=False)


def check_detector_names(detectors: Sequence[str] | None,
                         options: Mapping[str, Mapping[str, Any]] | None) -> list[str]:
    """The detectors to run (all when ``None``), each known, with options only for those run."""
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
    reference_values: dict[str, list[float]] | None = None,
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
        reference_values: a cache of the references' statistics per detector, filled on first
            use and read after: several candidates read against the same references with the
            same ``seed`` and ``options`` (a detection study) measure each reference once.
    """
    names = check_detector_names(detectors, options)
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
            cached = None if reference_values is None else reference_values.get(name)
            refs = cached if cached is not None else [
                run_detector(name, ref, rt=rt, options=opts).value for ref in references]
            if reference_values is not None:
                reference_values[name] = refs
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
    names = check_detector_names(detectors, options)
    _check_detect_options(names, references, threads)
    if out is not None:
        check_output_dir(out, marker="detect.json", what="a uebench detect report")
    target = resolve_target(data, poison=poison, train_size=train_size, seed=seed)
    resolve_device(device)
    sets = load_target_sets(target, data_dir=data_dir, references=references)
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        report = detect_sets(
            sets.candidate, sets.references, detectors=names, seed=target.seed, device=device,
            options=options, dataset=target.dataset,
            poison=str(target.poison) if target.poison is not None else None,
            attack=sets.attack, reference_overlap=sets.reference_overlap)
    finally:
        torch.set_num_threads(old_threads)
    if out is not None:
        write_report(report, out)
    return report


def _check_detect_options(names: Sequence[str], references: int, threads: int | None) -> None:
    """The counts ``detect`` was given fit the chosen detectors (before any data is loaded)."""
    if references < 0:
        raise UebenchError(f"--references must be >= 0, got {references}")
    if threads is not None and threads < 1:
        raise UebenchError(f"--threads must be >= 1, got {threads}")
    needs = [n for n in names if DETECTORS.meta(n)["needs_reference"]]
    if needs and references == 0:
        raise UebenchError(f"detectors {needs} read the set against clean references: use "
                           "--references 1 or more (default 2)")
