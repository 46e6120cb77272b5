"""Stored expected values of a grid and the comparison a regression test makes (in the manner of
RobustBench's ``model_info/*.json`` + ``test_clean_acc_jsons_exact``).

``experiments/expected/<grid>.json`` holds, per cell, the labels, seeds and per-seed test
accuracy, #LP and UD measured when the grid was last run on the development machine (the command
and machine are recorded in it). :func:`compare` reruns nothing: it compares a fresh
``tables.json`` with the stored one, cell by cell, within tolerances that allow for another CPU's
floating-point order (on the same machine and torch version the values are identical).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FIELDS = ("test_acc", "lp", "ud")
# absolute tolerances on the mean over seeds: accuracy (fraction), #LP (layers), UD (ratio)
TOLERANCE = {"test_acc": 0.03, "lp": 0.3, "ud": 0.25}


def _cell_id(cell: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(cell["labels"].items()))


def expected_values(tables: Mapping[str, Any], **about: Any) -> dict[str, Any]:
    """The part of a ``tables.json`` worth storing: labels, seeds, per-seed values, summaries."""
    cells = [{"labels": c["labels"], "seeds": c["seeds"],
              **{f: c[f] for f in FIELDS}, **{f"{f}_per_seed": c[f"{f}_per_seed"] for f in FIELDS}}
             for c in tables["cells"]]
    return {"grid": tables["grid"], "ci": tables["ci"], **about, "cells": cells}


def compare(tables: Mapping[str, Any], expected: Mapping[str, Any],
            tolerance: Mapping[str, float] | None = None) -> list[str]:
    """Differences between a fresh result and the stored one (empty = within tolerance)."""
    tol = {**TOLERANCE, **(tolerance or {})}
    have = {_cell_id(c): c for c in tables["cells"]}
    want = {_cell_id(c): c for c in expected["cells"]}
    problems = [f"cell {dict(k)} is missing" for k in want if k not in have]
    problems += [f"cell {dict(k)} is not in the expected values" for k in have if k not in want]
    for key in want.keys() & have.keys():
        got, exp = have[key], want[key]
        if got["seeds"] != exp["seeds"]:
            problems.append(f"cell {dict(key)}: seeds {got['seeds']} != {exp['seeds']}")
        for field in FIELDS:
            a, b = got[field].get("mean"), exp[field].get("mean")
            if (a is None) != (b is None) or (a is not None and abs(a - b) > tol[field]):
                problems.append(f"cell {dict(key)}: {field} mean {a} vs expected {b} "
                                f"(tolerance {tol[field]})")
    return problems
