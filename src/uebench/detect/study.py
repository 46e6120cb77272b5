"""The detection study: how often each detector flags protected sets, and clean ones, with error
rates measured over subset sizes and seeds (``uebench detect-study``; docs/detect.md).

For every poison directory (all made for the same clean images, e.g. one grid's poisons) and
every (size, seed):

- the **candidate** is a seeded class-stratified subset of ``size`` of the poison's images, taken
  poisoned; the **clean twin** is the same subset of the clean originals;
- both are read against the same ``references`` clean subsets of the dataset's training split
  (same size and class counts, disjoint from the poison's images where the split allows),
  measured once per (size, seed) and shared by every candidate;
- the detection rate of a poison is the share of its (size, seed) candidates flagged, the
  false-positive rate the share of clean twins flagged (the random-noise controls are poisons
  here, and must not be flagged more often than clean data).

Sample level: at the largest size, a set in which a seeded share ``ratio`` of the images is
poisoned (the rest clean originals) is scored by every detector with sample scores, and the AUROC
of those scores for "this image is poisoned" is reported per poison and seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from uebench.data.base import ImageSet, load_dataset, stratified_subset
from uebench.detect.api import DEFAULT_REFERENCES, check_detector_names, detect_sets
from uebench.detect.base import DETECTORS
from uebench.detect.target import reference_indices
from uebench.errors import UebenchError
from uebench.poisons.manifest import manifest_attack, read_manifest
from uebench.poisons.store import load_poisoned
from uebench.runtime import derive_seed

STUDY_STREAM = 9200  # seed stream of the study's subsets (distinct from the references' 9100)


@dataclass(frozen=True)
class StudyPoison:
    """One poison of the study: its directory, label, attack and the sets it gives."""

    path: Path
    label: str
    attack: str
    clean: ImageSet
    poisoned: ImageSet


def load_study_poisons(poisons: Sequence[str | Path], *,
                       data_dir: str | Path | None = None) -> tuple[list[StudyPoison], ImageSet]:
    """The poisons (each with its clean originals) and the dataset's full training split; all
    poisons must be made for the same images, so that the clean twins are one set. An item is a
    directory or ``LABEL=DIR``."""
    if not poisons:
        raise UebenchError("detect-study needs at least one poison directory")
    out: list[StudyPoison] = []
    made = None
    for p in poisons:
        label, path = _labelled(p)
        manifest = read_manifest(path)  # not a poison: the message says what is
        key = (manifest["dataset"], manifest["n"], manifest.get("seed") or 0)
        if made is not None and key != made:
            raise UebenchError(
                f"{path} was made for {key[1]} images of {key[0]} (subset seed {key[2]}), the "
                f"first poison for {made[1]} of {made[0]} (seed {made[2]}): a study compares "
                "poisons of the same images; run one study per subset")
        made = key
        split = load_dataset(key[0], data_dir=data_dir, train_size=key[1], seed=key[2])
        poisoned = load_poisoned(path, split.train)
        if label in {q.label for q in out}:
            raise UebenchError(f"two poisons are labelled {label!r}: name them, LABEL=DIR")
        out.append(StudyPoison(path, label, manifest_attack(manifest) or "?", split.train,
                               poisoned))
    assert made is not None
    full = load_dataset(made[0], data_dir=data_dir).train
    return out, full


def _labelled(item: str | Path) -> tuple[str, Path]:
    """``LABEL=DIR`` (a name for the tables) or ``DIR`` (labelled by its directory name)."""
    text = str(item)
    label, sep, rest = text.partition("=")
    if sep and label and "/" not in label:
        return label, Path(rest)
    return Path(text).name, Path(text)


def _subset(n: int, y: torch.Tensor, size: int, seed: int) -> torch.Tensor:
    if size >= n:
        return torch.arange(n)
    return stratified_subset(y, size, derive_seed(seed, STUDY_STREAM, size))


def _flag_row(report: Any) -> dict[str, Any]:
    return {"flagged": bool(report.flagged),
            "by": {r.name: bool(r.flagged) for r in report.results},
            "score": {r.name: float(r.score) for r in report.results}}


def sample_auroc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """P(score of a poisoned image > score of a clean one), ties counted half (the Mann-Whitney
    U statistic over average ranks); ``None`` when either group is empty."""
    from scipy.stats import rankdata  # lazy: scipy only where a study is computed

    scores, positive = np.asarray(scores, dtype=np.float64), np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def detection_study(
    poisons: Sequence[str | Path], *, sizes: Sequence[int] = (500, 1000, 2000),
    seeds: Sequence[int] = (0, 1, 2), ratio: float = 0.5,
    references: int = DEFAULT_REFERENCES, detectors: Sequence[str] | None = None,
    data_dir: str | Path | None = None, threads: int | None = 1,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Dataset-level detection and false-positive rates over sizes and seeds, and sample-level
    AUROC on partly poisoned sets (module docstring); mirrors ``uebench detect-study``.

    Returns ``{"dataset", "n", "sizes", "seeds", "ratio", "references", "detectors", "rows",
    "clean", "samples", "summary"}``: ``rows`` one per (poison, size, seed), ``clean`` one per
    (size, seed), ``samples`` one per (poison, seed), ``summary`` per poison and for the clean
    twins.
    """
    names = check_detector_names(detectors, None)
    if not 0 < ratio < 1 or math.isnan(ratio):
        raise UebenchError(f"--ratio must be inside (0, 1), got {ratio}")
    if not sizes or any(s < 1 for s in sizes) or not seeds:
        raise UebenchError(f"--sizes must be positive and --seeds not empty, got {list(sizes)} "
                           f"and {list(seeds)}")
    study, full = load_study_poisons(poisons, data_dir=data_dir)
    clean = study[0].clean
    n = len(clean)
    sizes = sorted({min(int(s), n) for s in sizes})
    say = progress or (lambda _: None)
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    rows, clean_rows, sample_rows = [], [], []
    # per (size, seed): the clean references and their measured statistics, shared by every
    # candidate of that size and seed (the sample-level sets use the largest size's)
    shared: dict[tuple[int, int], tuple[list[ImageSet], dict[str, list[float]]]] = {}
    try:
        for size in sizes:
            for seed in seeds:
                idx = _subset(n, clean.y, size, seed)
                refs = [full.subset(r) for r in reference_indices(
                    full.y, clean.indices[idx], seed=seed, count=references)]
                cache: dict[str, list[float]] = {}
                shared[(size, seed)] = (refs, cache)
                say(f"clean twin, {size} images, seed {seed}")
                report = detect_sets(clean.subset(idx), refs, detectors=names, seed=seed,
                                     reference_values=cache)
                clean_rows.append({"size": size, "seed": seed, **_flag_row(report)})
                for p in study:
                    say(f"{p.label}, {size} images, seed {seed}")
                    report = detect_sets(p.poisoned.subset(idx), refs, detectors=names,
                                         seed=seed, reference_values=cache)
                    rows.append({"poison": p.label, "attack": p.attack, "size": size,
                                 "seed": seed, **_flag_row(report)})
        sample_rows = _sample_level(study, sizes[-1], seeds, ratio, names, shared, say)
    finally:
        torch.set_num_threads(old_threads)
    return {"dataset": clean.name, "n": n, "sizes": sizes, "seeds": list(seeds), "ratio": ratio,
            "references": references, "detectors": names, "rows": rows, "clean": clean_rows,
            "samples": sample_rows, "summary": summarize(rows, clean_rows, sample_rows, names)}


def _sample_level(study: Sequence[StudyPoison], size: int, seeds: Sequence[int], ratio: float,
                  names: Sequence[str],
                  shared: dict[tuple[int, int], tuple[list[ImageSet], dict[str, list[float]]]],
                  say: Callable[[str], None]) -> list[dict[str, Any]]:
    """Per poison and seed: the AUROC of every sample-scoring detector on a set of ``size``
    images of which a seeded class-stratified share ``ratio`` is poisoned."""
    scorers = [m for m in names if DETECTORS.meta(m)["sample_scores"]]
    if not scorers:
        return []
    out = []
    clean = study[0].clean
    for seed in seeds:
        idx = _subset(len(clean), clean.y, size, seed)
        part = clean.subset(idx)
        k = max(1, min(len(part) - 1, math.floor(ratio * len(part) + 0.5)))
        chosen = stratified_subset(part.y, k, derive_seed(seed, STUDY_STREAM, 1))
        mask = torch.zeros(len(part), dtype=torch.bool)
        mask[chosen] = True
        refs, cache = shared[(size, seed)]  # the dataset-level pass measured them already
        for p in study:
            say(f"{p.label}, {ratio:.0%} of {len(part)} images poisoned, seed {seed}")
            x = torch.where(mask[:, None, None, None], p.poisoned.x[idx], part.x)
            mixed = ImageSet(x, part.y, part.classes, part.name, dict(part.meta))
            report = detect_sets(mixed, refs, detectors=scorers, seed=seed,
                                 reference_values=cache)
            out.append({"poison": p.label, "attack": p.attack, "size": len(part), "seed": seed,
                        "auroc": {m: sample_auroc(report.samples[m], mask.numpy())
                                  for m in scorers if m in report.samples}})
    return out


def _rate(flags: Sequence[bool]) -> float | None:
    return float(np.mean(flags)) if flags else None


def rate_interval(hits: int, cases: int, level: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) interval of a rate from ``hits`` of ``cases``: with 9 cases,
    0 hits still allows a rate up to 34 %, which a table must say beside its 0 %."""
    from scipy.stats import beta  # lazy: scipy only where a study is computed

    if cases <= 0:
        raise UebenchError("a rate needs at least one case")
    alpha = 1 - level
    low = 0.0 if hits == 0 else float(beta.ppf(alpha / 2, hits, cases - hits + 1))
    high = 1.0 if hits == cases else float(beta.ppf(1 - alpha / 2, hits + 1, cases - hits))
    return low, high


def summarize(rows: Sequence[dict[str, Any]], clean_rows: Sequence[dict[str, Any]],
              sample_rows: Sequence[dict[str, Any]], names: Sequence[str]) -> list[dict[str, Any]]:
    """Per poison (and the clean twins): the overall and per-detector flag rates over every
    (size, seed), the rate at the largest size, and the mean sample-level AUROC per detector."""
    largest = max((r["size"] for r in clean_rows), default=None)

    def entry(label: str, attack: str, group: Sequence[dict[str, Any]]) -> dict[str, Any]:
        hits = sum(bool(r["flagged"]) for r in group)
        return {"poison": label, "attack": attack, "cases": len(group),
                "rate": _rate([r["flagged"] for r in group]),
                "interval": list(rate_interval(hits, len(group))) if group else None,
                "rate_largest": _rate([r["flagged"] for r in group if r["size"] == largest]),
                "by": {m: _rate([r["by"][m] for r in group]) for m in names}}

    out = [entry("clean", "clean", clean_rows)]
    for label in dict.fromkeys(r["poison"] for r in rows):
        group = [r for r in rows if r["poison"] == label]
        e = entry(label, group[0]["attack"], group)
        aurocs = [r["auroc"] for r in sample_rows if r["poison"] == label]
        e["auroc"] = {m: (float(np.mean(vals)) if (vals := [a[m] for a in aurocs
                                                             if a.get(m) is not None]) else None)
                      for m in (aurocs[0] if aurocs else {})}
        out.append(e)
    return out


def study_tables(result: dict[str, Any]) -> dict[str, tuple[list[str], list[list[str]]]]:
    """The study as two plain tables: dataset-level flag rates, and sample-level AUROC."""
    names = result["detectors"]

    def pct(v: float | None) -> str:
        return "–" if v is None else f"{100 * v:.0f} %"

    def interval(v: Sequence[float] | None) -> str:
        return "–" if v is None else f"{100 * v[0]:.0f}–{100 * v[1]:.0f} %"

    rates = [[s["poison"], s["attack"], str(s["cases"]), pct(s["rate"]),
              interval(s.get("interval")), pct(s["rate_largest"]),
              *(pct(s["by"][m]) for m in names)] for s in result["summary"]]
    scorers = [m for m in names if DETECTORS.meta(m)["sample_scores"]]
    aurocs = [[s["poison"], s["attack"], *("–" if s.get("auroc", {}).get(m) is None
                                          else f"{s['auroc'][m]:.2f}" for m in scorers)]
              for s in result["summary"] if s["poison"] != "clean"]
    largest = max(result["sizes"])
    return {
        "rates": (["set", "attack", "cases", "flagged", "95 % interval", f"flagged at {largest}",
                   *(f"{m}" for m in names)], rates),
        "auroc": (["poison", "attack", *(f"AUROC {m}" for m in scorers)], aurocs),
    }
