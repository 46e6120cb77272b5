"""Learnability statistics: one registry, one small file per statistic, every value computed from
run directories.

A statistic reads one training run against the clean run of the *same seed* (same initial weights
and data order; :class:`Pair`) and returns one number, or ``None`` where it cannot be computed
(a post-hoc measurement that was not made, a clean run with no learnable layer). What a number
means is never read alone: :mod:`uebench.learnability.paired` compares it with the random-noise
control of the poison's budget, seed by seed.

Each statistic declares the direction in which a poison that makes data *less learnable* moves it
(``less="lower"``: UD, accuracy; ``less="higher"`` would be a statistic that grows), what it reads
(``reads``: ``sal``, ``sal:<tag>``, ``accuracy`` or ``data``) and a one-line description; the
paragraph that defines it is in docs/ud.md. Adding one is one file here with
``@register_statistic(...)``: the registry-driven tests (tests/test_statistics.py) cover it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from uebench.learnability.threshold import SalDataError, epoch_thresholds, sal_matrix
from uebench.registry import Registry
from uebench.train.run_record import RunRecord, load_run
from uebench.train.sal_tags import has_tag

Direction = Literal["lower", "higher"]


@dataclasses.dataclass(frozen=True)
class Pair:
    """One run read against the clean run of its seed.

    ``clean_sal`` and ``run_sal`` are (epochs × layers) SAL matrices over the same layers (the
    clean run's order); ``beta`` is the clean run's learnable threshold (Eq. 4). ``is_clean`` marks
    the clean run read against itself (its paired statistics are 0 by construction).
    """

    clean: RunRecord
    run: RunRecord
    clean_sal: np.ndarray
    run_sal: np.ndarray
    layers: tuple[str, ...]
    beta: float
    is_clean: bool = False

    @classmethod
    def of(cls, clean: RunRecord, run: RunRecord, *, is_clean: bool = False) -> Pair:
        c, layers = sal_matrix(clean.rows, name=clean.name)
        p, have = sal_matrix(run.rows, name=run.name)
        index = {layer: j for j, layer in enumerate(have)}
        if set(have) != set(layers):
            raise SalDataError(f"{run.name} measures different layers from {clean.name}: "
                               "statistics compare runs of the same architecture")
        p = p[:, [index[layer] for layer in layers]]
        beta = float(np.mean(epoch_thresholds(c)))
        return cls(clean, run, c, p, tuple(layers), beta, is_clean)

    def tagged(self, tag: str) -> Pair | None:
        """The same pair with SAL from the post-hoc measurement ``tag`` (``RUN/sal/<tag>.jsonl``)
        of both runs, or ``None`` if either run lacks it or they cover different epochs."""
        runs = []
        for record in (self.clean, self.run):
            if record.path is None or not has_tag(record.path, tag):
                return None
            tagged = load_run(record.path, name=record.name, sal_tag=tag)
            runs.append(tagged)
        epochs = [[int(r["epoch"]) for r in t.rows] for t in runs]
        if epochs[0] != epochs[1]:
            return None
        return Pair.of(runs[0], runs[1], is_clean=self.is_clean)


StatisticFn = Callable[[Pair], "float | None"]


@dataclasses.dataclass(frozen=True)
class StatisticInfo:
    """A registered statistic: its function and what a reader needs to know about it."""

    name: str
    fn: StatisticFn
    label: str
    less: Direction  # the direction a poison that makes data less learnable moves the value
    reads: str  # sal | sal:<tag> | accuracy | data
    description: str
    scale: float = 1.0  # display scale (100 for accuracies shown in points)
    digits: int = 3
    order: int = 50  # column order in tables (the paper's UD first)


STATISTICS: Registry[StatisticInfo] = Registry("statistic")


def register_statistic(name: str, *, label: str, less: Direction, reads: str, description: str,
                       scale: float = 1.0, digits: int = 3,
                       order: int = 50) -> Callable[[StatisticFn], StatisticFn]:
    """Decorator: register ``fn(pair) -> float | None`` as statistic ``name``."""
    if less not in ("lower", "higher"):
        raise ValueError(f"statistic {name}: less must be 'lower' or 'higher', got {less!r}")

    def deco(fn: StatisticFn) -> StatisticFn:
        STATISTICS.register(name)(StatisticInfo(name, fn, label, less, reads, description,
                                                scale, digits, order))
        return fn

    return deco


def statistic_info(name: str) -> StatisticInfo:
    return STATISTICS.get(name)


def statistic_names() -> list[str]:
    """Registered statistics in table order."""
    return sorted(STATISTICS.names(), key=lambda n: (STATISTICS.get(n).order, n))


def compute_statistics(clean: RunRecord, runs: Sequence[RunRecord],
                       names: Sequence[str] | None = None) -> list[dict[str, float | None]]:
    """Every statistic (or ``names``) of the clean run (read against itself) and of each run.

    Returns one ``{statistic: value}`` per run, the clean run first.
    """
    chosen = list(names) if names is not None else statistic_names()
    pairs = [Pair.of(clean, clean, is_clean=True)] + [Pair.of(clean, r) for r in runs]
    out = []
    for pair in pairs:
        values: dict[str, float | None] = {}
        for name in chosen:
            value = STATISTICS.get(name).fn(pair)
            values[name] = None if value is None or not np.isfinite(value) else float(value)
        out.append(values)
    return out


def statistics_of_dirs(clean_dir: Path | str, run_dirs: Sequence[Path | str],
                       names: Sequence[str] | None = None) -> list[dict[str, float | None]]:
    """:func:`compute_statistics` of stored run directories."""
    clean = load_run(clean_dir)
    return compute_statistics(clean, [load_run(d) for d in run_dirs], names)


def describe(names: Sequence[str] | None = None) -> list[Mapping[str, Any]]:
    """Name, label, direction, what it reads and the description of each statistic."""
    return [{"name": n, "label": STATISTICS.get(n).label, "less": STATISTICS.get(n).less,
             "reads": STATISTICS.get(n).reads, "description": STATISTICS.get(n).description}
            for n in (names or statistic_names())]
