"""Partial protection read against the clean part alone (docs/bench.md, "Partial and mixed
poisoning", ``drop``).

At a protected share r, a ``replace`` run trains on the (1 − r) N clean images plus the r N
protected ones; a ``drop`` run at the same share trains on the same clean images alone (the same
protected subset: it is drawn from the data seed, not the training seed). Seed by seed, the
difference of their test accuracies says what the protected images did to the model:

- interval above 0: the model still **learned from** the protected images;
- interval below 0: the protected images **harmed** what the clean part teaches;
- interval across 0: **no different from dropping them** (the protection's aim: the protected
  images teach nothing, and the clean part still teaches what it teaches alone).

The inputs are the ``cells`` of two grids' collected results (``uebench bench ... --save``: the
replace grid and its ``drop`` twin), so the comparison reads stored results, never retyped ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from uebench.learnability.paired import paired_difference
from uebench.learnability.stat_report import interval_text
from uebench.learnability.stats import summarize

RATIO = "poison_ratio"


def _per_seed(cell: Mapping[str, Any]) -> dict[int, float | None]:
    return dict(zip(cell["seeds"], cell["test_acc_per_seed"]))


def _share(cell: Mapping[str, Any]) -> float | None:
    value = cell.get("setting", {}).get(RATIO)
    return None if value is None else float(value)


def _where(cell: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """The cell's setting apart from its method and share (model, defense, dataset, ...): a
    replace cell pairs with the drop cell of the same setting and share."""
    return tuple(sorted((k, str(v)) for k, v in (cell.get("labels") or {}).items()
                        if k not in ("method", RATIO)))


def reading(p: Mapping[str, Any]) -> str:
    """What a replace − drop interval says (see the module docstring)."""
    if p.get("ci_low") is None or p.get("ci_high") is None:
        return "n/a (1 seed)"
    if p["ci_low"] > 0:
        return "learned from them"
    if p["ci_high"] < 0:
        return "harmed the clean part"
    return "no different from dropping them"


def clean_part_rows(replace: Sequence[Mapping[str, Any]],
                    drop: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per protected set, setting and share of the replace grid: its accuracy, the clean part's
    alone (the drop cell of the same setting and share), and their paired difference (seeds
    matched by number, in points), in the replace grid's order. Shares without a drop cell (1.0:
    nothing left) are skipped; the clean run's cells too. ``where`` names the setting apart from
    the share (``model=..., defense=...``)."""
    alone = {(_where(c), _share(c)): c for c in drop if not c.get("vanilla")}
    rows = []
    for cell in replace:
        share, where = _share(cell), _where(cell)
        if cell.get("vanilla") or (where, share) not in alone:
            continue
        mine, base = _per_seed(cell), _per_seed(alone[where, share])
        seeds = [s for s in mine if s in base]
        acc, alone_acc = [_pct(mine[s]) for s in seeds], [_pct(base[s]) for s in seeds]
        p = paired_difference(acc, alone_acc, less="lower")
        rows.append({"method": cell["method"], "role": cell.get("role"), "share": share,
                     "where": ", ".join(f"{k}={v}" for k, v in where),
                     "seeds": seeds, "acc": summarize(acc),
                     "acc_clean_part": summarize(alone_acc), "diff": p, "reading": reading(p)})
    return rows


def _pct(v: float | None) -> float | None:
    return None if v is None else 100.0 * float(v)


def clean_part_table(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The rows as one table: set, share, accuracies and the paired difference with its reading
    (the set is named with its setting when the rows come from several settings)."""
    header = ["protected set", "share", "seeds", "test acc (%)", "clean part alone (%)",
              "with − without the protected images (points)", "the protected images"]
    several = len({r.get("where") for r in rows}) > 1
    body = [[f"{r['method']} · {r['where']}" if several else r["method"], f"{r['share']:.0%}",
             str(len(r["seeds"])), f"{r['acc']['mean']:.2f}",
             f"{r['acc_clean_part']['mean']:.2f}", interval_text(r["diff"], 2), r["reading"]]
            for r in rows]
    return header, body
