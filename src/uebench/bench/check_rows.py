"""The rows of a check: per protected set, model, defense and protected share, the numbers over
seeds, each paired against its clean model and its random-noise control, and the verdict."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from uebench.bench.check_grid import RATIO_AXIS
from uebench.bench.verdict import HEADLINE, verdict
from uebench.learnability.stat_report import add_statistics_by_seed
from uebench.learnability.stats import summarize


def _share(record: Mapping[str, Any]) -> float | None:
    """The protected share of a record's cell; ``None`` for the clean model, which is the same run
    at every share (:func:`uebench.config.without_poison`)."""
    label = record["labels"].get(RATIO_AXIS)
    return None if record["vanilla"] or label is None else float(label)


def check_rows(records: Sequence[Mapping[str, Any]], *, ci: str, min_drop: float
               ) -> list[dict[str, Any]]:
    """Per (protected set, model, defense, protected share): UD, #LP, accuracy, the drop paired
    by seed against the clean undefended model, every statistic over seeds and paired against
    the cell's random-noise control at the same share, and the verdict
    (:mod:`uebench.bench.verdict`)."""
    def _key(r: Mapping[str, Any], method: str, defense: str) -> tuple[Any, ...]:
        return method, r["labels"]["model"], defense, r["seed"]

    at = {_key(r, r["method"], r["labels"]["defense"]): r for r in records}
    shares = {_share(r) for r in records} - {None}
    cells: dict[tuple[str, str, str, float | None], dict[int, Mapping[str, Any]]] = {}
    for r in records:  # the clean run appears once per share: the same run, counted once
        key = (r["method"], r["labels"]["model"], r["labels"]["defense"], _share(r))
        cells.setdefault(key, {}).setdefault(r["seed"], r)
    rows = []
    for (method, model, defense, share), by_seed in cells.items():
        group = list(by_seed.values())
        drops = []
        for r in group:
            ref = at.get(_key(r, "vanilla", "none"))
            ok = ref and ref["test_acc"] is not None and r["test_acc"] is not None
            drops.append(ref["test_acc"] - r["test_acc"] if ok else None)
        names = list(dict.fromkeys(k for r in group for k in r.get("statistics") or {}))
        shown = share is not None and shares != {1.0}
        row: dict[str, Any] = {
            "method": method, "model": model, "defense": defense, "ratio": share,
            "vanilla": group[0]["vanilla"],
            "role": "clean" if group[0]["vanilla"] else next(
                (r["role"] for r in group if r.get("role")), "poisoned"),
            "control": next((r["control_method"] for r in group if r.get("control_method")),
                            None),
            "label": f"{method} · {model} · {defense}" + (f" · ratio {share:g}" if shown else ""),
            "seeds": [r["seed"] for r in group], "drop_per_seed": drops,
            "drop": summarize(drops, method=ci),  # type: ignore[arg-type]
            "statistics_by_seed": {k: {r["seed"]: (r.get("statistics") or {}).get(k)
                                       for r in group} for k in names}}
        for field in ("ud", "lp", "test_acc"):
            values = [r[field] for r in group]
            row[field], row[f"{field}_per_seed"] = summarize(values, method=ci), values
        rows.append(row)
    for group_rows in by_setting(rows).values():  # a control pairs within its own share
        for row in group_rows:
            row["name"] = row["method"]
        add_statistics_by_seed(group_rows)
    for row in rows:
        if row["role"] == "poisoned":
            row["verdict"] = verdict(row["drop"], row["paired"].get(HEADLINE),
                                     min_drop=min_drop)
    return rows


def by_setting(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[Any, ...], list[Any]]:
    """Rows per (model, defense, share); the clean rows (share ``None``) in a group of their own."""
    out: dict[tuple[Any, ...], list[Any]] = {}
    for row in rows:
        out.setdefault((row["model"], row["defense"], row["ratio"]), []).append(row)
    return out
