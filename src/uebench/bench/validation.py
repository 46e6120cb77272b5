"""Which statistic carries the signal? The validation study over grid views (``uebench validate``).

Input: the views of grids that hold poisons, their random-noise controls and a second draw of a
control (``experiments/study/*.yaml``), each with several seeds; a grid with further axes (data
size, share) counts each of their settings as a setting of its own. For every registered
statistic:

- **effect**: per setting and poison, the paired difference poison − control (mean, 95 %
  t-interval over the seeds, separated or not; :mod:`uebench.learnability.paired`);
- **AUROC (paired)**: over every (setting, seed) pair of a poison and its control, the fraction in
  which the poison reads less learnable than the control (ties count ½): 0.5 = no signal,
  1 = the poison always reads less learnable;
- **power at k seeds**: over every k-seed subset of the seeds, the fraction in which a poison
  that costs ≥ 20 points is separated from its control (what ``uebench check`` with k seeds would
  see);
- **false positives**: the second control draw read against the first, separated at all seeds
  and over every k-seed subset: how often harmless noise would be called protection; and the
  same counted on *either* side of 0 (two draws of one noise that differ systematically in the
  "more learnable" direction show a statistic that reads the draw, not the kind of noise; the
  one-sided rule of a verdict does not see it).

A statistic meets the target when every poison that costs ≥ 20 points is separated in every
setting at all seeds, the control-vs-control pairs are separated in at most 1 of 20 subsets, and
EM and OPS read less learnable (as in the paper).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from uebench.bench.collect import collect
from uebench.learnability.paired import paired_difference
from uebench.learnability.stat_report import paired_cell
from uebench.learnability.statistics import STATISTICS, statistic_names

COSTLY = 0.20  # accuracy cost (fraction) of a poison that "works"
FP_TARGET = 1 / 20


def _cells(view: Path) -> list[tuple[str, list[dict[str, Any]]]]:
    """A view's cells per setting, each named by its grid and, where the grid has axes besides
    method and seed, their values (``datasize-cifar-train_size-10000``): every setting pairs its
    poisons with its own controls and clean run."""
    result = collect(view)
    groups: dict[str, list[dict[str, Any]]] = {}
    for cell in result["cells"]:
        name = str(result["grid"]) + "".join(f"-{k}-{v}" for k, v in
                                             (cell.get("setting") or {}).items())
        groups.setdefault(name, []).append({**cell, "grid": result["grid"]})
    return list(groups.items())


def _subsets(n: int, k: int) -> list[tuple[int, ...]]:
    return list(itertools.combinations(range(n), min(k, n)))


def _sub(values: Sequence[Any], idx: Sequence[int]) -> list[Any]:
    return [values[i] for i in idx]


def validate(views: Sequence[Path | str], *, k: int = 3) -> dict[str, Any]:
    """The study's numbers (see the module docstring) from grid views."""
    settings = [setting for v in views for setting in _cells(Path(v))]
    names = [n for n in statistic_names()
             if any((c.get("statistics") or {}).get(n, {}).get("mean") is not None
                    for _, cells in settings for c in cells)]
    effects = _effects(settings)
    summary = [_statistic_summary(name, effects, k) for name in names]
    return {"k": k, "settings": [g for g, _ in settings], "statistics": names,
            "summary": summary, "effects": [{k2: v for k2, v in e.items()
                                             if k2 not in ("run", "ref")} for e in effects]}


def _effects(settings: Sequence[tuple[str, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """Every run that has a control, with its cost against clean training and the per-seed
    statistics of it and of its control."""
    effects: list[dict[str, Any]] = []
    for grid, cells in settings:
        by_method = {c["method"]: c for c in cells}
        clean = by_method.get("vanilla")
        for c in cells:
            control = by_method.get(c.get("control") or "")
            if control is None:
                continue
            cost = None
            means = (clean or {}).get("test_acc", {}).get("mean"), c["test_acc"]["mean"]
            if None not in means:
                cost = float(means[0]) - float(means[1])
            effects.append({"setting": grid, "grid": c["grid"],
                            "axes": dict(c.get("setting") or {}),
                            "method": c["method"], "role": c["role"],
                            "control": control["method"], "cost": cost,
                            "seeds": c.get("statistics_seeds"),
                            "run": c["statistics_per_seed"], "ref": control["statistics_per_seed"]})
    return effects


def _statistic_summary(name: str, effects: list[dict[str, Any]], k: int) -> dict[str, Any]:
    """One statistic over every effect: paired AUROC, costly poisons separated and the power at
    ``k`` seeds, control-vs-control false positives, EM/OPS direction (and each effect's paired
    difference, recorded on the effect)."""
    less = STATISTICS.get(name).less
    wins = total = 0.0
    costly_sep, costly_n, power = 0, 0, []
    fp_full = fp_cells = fp_sub = fp_n = fp_two = fp_two_sub = 0
    direction_ok = True
    for e in effects:
        run, ref = e["run"].get(name), e["ref"].get(name)
        if not run or not ref:
            continue
        full = paired_difference(run, ref, less=less)
        e.setdefault("paired", {})[name] = full
        parts = [paired_difference(_sub(run, s), _sub(ref, s), less=less)
                 for s in _subsets(len(run), k)]
        subsets = [p["separated"] for p in parts]
        if e["role"] == "control-b":
            fp_cells += 1
            fp_full += bool(full["separated"])
            fp_sub += sum(bool(x) for x in subsets)
            fp_n += len(subsets)
            # either side: two draws of the same noise that differ systematically in the
            # "more learnable" direction are as much a false signal as the other way
            fp_two += _excludes_zero(full)
            fp_two_sub += sum(_excludes_zero(p) for p in parts)
            continue
        for d in full["per_seed"]:
            if d is not None:
                total += 1
                wins += 1.0 if (d < 0) == (less == "lower") and d != 0 else 0.5 * (d == 0)
        if e["cost"] is not None and e["cost"] >= COSTLY:
            costly_n += 1
            costly_sep += bool(full["separated"])
            power += [bool(x) for x in subsets]
        if e["method"] in ("em", "ops") and full["direction"] != "less":
            direction_ok = False
    return {
        "statistic": name, "auroc": wins / total if total else None,
        "costly_separated": costly_sep, "costly": costly_n,
        "power_k": sum(power) / len(power) if power else None,
        "fp_full": fp_full, "fp_cells": fp_cells,
        "fp_subsets": fp_sub / fp_n if fp_n else None, "fp_subset_count": fp_n,
        "fp_two_sided": fp_two, "fp_subsets_two_sided": fp_two_sub / fp_n if fp_n else None,
        "em_ops_less": direction_ok,
        "target": bool(costly_n and costly_sep == costly_n and fp_n
                       and fp_sub / fp_n <= FP_TARGET and direction_ok)}


def _excludes_zero(p: Mapping[str, Any]) -> bool:
    """Whether a paired interval lies on one side of 0, whichever side."""
    low, high = p.get("ci_low"), p.get("ci_high")
    return low is not None and high is not None and (low > 0 or high < 0)


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f} %"


def summary_table(result: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    k = result["k"]
    header = ["statistic", "AUROC (paired)", "costly poisons separated (all seeds)",
              f"power at {k} seeds", "control vs control separated (all seeds)",
              f"… in {k}-seed subsets", "… either side (all seeds; subsets)",
              "EM, OPS read less learnable", "target met"]
    rows = []
    for s in result["summary"]:
        rows.append([STATISTICS.get(s["statistic"]).label if s["statistic"] in STATISTICS
                     else s["statistic"],
                     "–" if s["auroc"] is None else f"{s['auroc']:.2f}",
                     f"{s['costly_separated']} / {s['costly']}", _pct(s["power_k"]),
                     f"{s['fp_full']} / {s['fp_cells']}",
                     f"{_pct(s['fp_subsets'])} of {s['fp_subset_count']}",
                     f"{s.get('fp_two_sided', 0)} / {s['fp_cells']}; "
                     f"{_pct(s.get('fp_subsets_two_sided'))}",
                     "yes" if s["em_ops_less"] else "no", "**yes**" if s["target"] else "no"])
    return header, rows


def effects_table(result: Mapping[str, Any], setting: str) -> tuple[list[str], list[list[str]]]:
    """Per poison (and the second control draw) of one setting: cost and the paired difference
    from its control per statistic."""
    names = result["statistics"]
    header = ["run − control", "cost (points)",
              *(STATISTICS.get(n).label if n in STATISTICS else n for n in names)]
    rows = []
    for e in result["effects"]:
        if e["setting"] != setting:
            continue
        cells = []
        for n in names:
            p = (e.get("paired") or {}).get(n)
            if p is None:
                cells.append("–")
                continue
            info = STATISTICS.get(n)
            cells.append(paired_cell(p, info.digits, info.scale))
        cost = "–" if e["cost"] is None else f"{100 * e['cost']:.1f}"
        rows.append([f"{e['method']} − {e['control']}", cost, *cells])
    return header, rows

