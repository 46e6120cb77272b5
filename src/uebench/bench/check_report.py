"""The report of a check: ``check.html``, ``check.md`` and ``check.json``, with its tables
(verdicts, protection by share, statistics against the controls) and figures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from uebench.bench import figures
from uebench.bench.check_grid import RATIO_AXIS
from uebench.bench.check_rows import by_setting
from uebench.bench.clean_part import clean_part_table
from uebench.bench.detectability import TITLE as DETECT_TITLE
from uebench.bench.detectability import detect_blocks, detect_headline, detect_table
from uebench.bench.html import Block, to_html, to_markdown
from uebench.bench.report import notes
from uebench.bench.store import Store
from uebench.bench.tables import Entry, Table
from uebench.bench.verdict import HEADLINE, rule_text
from uebench.detect.report import RULE as DETECT_RULE
from uebench.learnability.stat_report import PAIRED_NOTE, paired_cell, paired_grid, statistics_grid
from uebench.learnability.statistics import STATISTICS
from uebench.learnability.stats import format_summary
from uebench.utils.io import atomic_write_text, write_json


def ratio_table(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Per protected set, model and defense: the verdict and accuracy drop at every share (one
    column per share, highest first); empty when the check has one share."""
    checked = [r for r in rows if r["role"] == "poisoned"]
    shares = sorted({r["ratio"] for r in checked}, reverse=True)
    if len(shares) < 2:
        return [], []
    at = {(r["method"], r["model"], r["defense"], r["ratio"]): r for r in checked}
    body = []
    for method, model, defense in dict.fromkeys((r["method"], r["model"], r["defense"])
                                                for r in checked):
        line = [f"{method} · {model} · {defense}"]
        for share in shares:
            r = at.get((method, model, defense, share))
            line.append("" if r is None else
                        f"{r['verdict']} (drop {format_summary(r['drop'], 1, 100)})")
        body.append(line)
    return ["protected set", *(f"ratio {s:g}" for s in shares)], body


def _table(rows: Sequence[Mapping[str, Any]], title: str, metrics: Sequence[str]) -> Table:
    entries = []
    for r in rows:
        line = [Entry(m, r[m] if r[m].get("mean") is not None else None) for m in metrics]
        if "verdict" in r:
            line.append(Entry("verdict", None, text=r["verdict"]))
        entries.append((r["label"], line))
    shown = [*metrics, *(["verdict"] if rows and "verdict" in rows[0] else [])]
    return Table(title=title, row_title="cell", groups=[""], metrics=list(shown), rows=entries)


def _figures(view: Path, records: Sequence[Mapping[str, Any]], store: Store) -> list[Block]:
    """Per (model, defense, protected share): SAL heat maps and learnable counts of the first
    seed."""
    blocks: list[Block] = []
    first = min(r["seed"] for r in records)
    several = len({r["labels"].get(RATIO_AXIS) for r in records}) > 1
    settings: dict[tuple[str, str, Any], list[Mapping[str, Any]]] = {}
    for r in records:
        if r["seed"] == first and r.get("beta_value") is not None:
            key = (r["labels"]["model"], r["labels"]["defense"], r["labels"].get(RATIO_AXIS))
            settings.setdefault(key, []).append(r)
    for (model, defense, share), group in settings.items():
        beta_key = group[0]["beta"]
        runs = [("clean", store.path("train", beta_key))]
        runs += [(r["method"], store.path("train", r["run"]))
                 for r in group if r["run"] != beta_key]
        at_share = f", ratio {float(share):g}" if several else ""
        stem = f"{model}_{defense}{'_r' + share if several else ''}".replace(":", "-").replace(
            "/", "-")
        blocks.append(("h2", f"Figures: {model}, defense {defense}{at_share} (seed {first})"))
        for path, caption in figures.setting_figures(runs, group[0]["beta_value"],
                                                     view / "figures", stem):
            blocks.append(("img", path, caption))
    return blocks


def verdict_table(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Per protected cell: the accuracy drop, UD, the headline statistic against the control and
    the verdict (what a stored check result holds for the docs)."""
    info = STATISTICS.get(HEADLINE)
    header = ["cell", "acc drop (points)", "UD", f"{info.label}: − control", "verdict"]
    body = [[r["label"], format_summary(r["drop"], 1, 100), format_summary(r["ud"], 3),
             paired_cell(r["paired"].get(HEADLINE) or {"mean": None}, info.digits, info.scale),
             r["verdict"]] for r in rows if r["role"] == "poisoned"]
    return header, body


def _statistics_blocks(rows: Sequence[Mapping[str, Any]]) -> list[Block]:
    """Per (model, defense, protected share): every statistic over seeds (the clean model's
    too) and each protected set against its random-noise control at that share (the numbers the
    verdict reads)."""
    blocks: list[Block] = []
    groups = by_setting(rows)
    several = len({share for _, _, share in groups} - {None}) > 1
    for (model, defense, share), group in groups.items():
        if share is None:
            continue
        group = [*groups.get((model, defense, None), []), *group]
        header, body = statistics_grid(group)
        if not body:
            continue
        at_share = f", ratio {share:g}" if several else ""
        blocks += [("h2", f"Statistics: {model}, defense {defense}{at_share}"),
                   ("p", "Mean ± std [95 % t-interval] over seeds; definitions in docs/ud.md."),
                   ("grid", header, body)]
        header, body = paired_grid(group)
        if body:
            blocks += [("p", PAIRED_NOTE), ("grid", header, body)]
    return blocks


def _ratio_blocks(rows: Sequence[Mapping[str, Any]]) -> list[Block]:
    header, body = ratio_table(rows)
    if not body:
        return []
    return [("h2", "Protection by protected share"),
            ("p", "The verdict and the accuracy drop (points, mean ± std [95 % interval] over "
                  "seeds) when only that share of the set is protected (poison_ratio: a "
                  "class-stratified subset, the same images for every seed and for the control; "
                  "the rest stay clean). Each share is read against its own random-noise control "
                  "at the same share."),
            ("grid", header, body)]


def _clean_part_blocks(table: tuple[list[str], list[list[str]]] | None) -> list[Block]:
    if table is None:
        return []
    header, body = table
    return [("h2", "Against the clean part alone"),
            ("p", "At each share below 1, the protected set's test accuracy against the same "
                  "model trained on its clean images alone (the protected images left out: "
                  "poison_mix drop), paired by seed, in points with a 95 % t-interval. Across "
                  "0: the protected images taught the model nothing (the protection works on "
                  "the images it covers); above 0: the model still learned from them; below 0: "
                  "they harmed what the clean images teach. The random-noise controls' rows say "
                  "what unprotected images at that budget add."),
            ("grid", header, body)]


def write_check_report(view: Path, rows: Sequence[Mapping[str, Any]], records: Sequence[Any],
                       collected: Mapping[str, Any], *, min_drop: float, store: Store,
                       detected: Sequence[Mapping[str, Any]] | None = None,
                       clean_part: Sequence[Mapping[str, Any]] | None = None
                       ) -> dict[str, Path]:
    """``check.html``, ``check.md`` and ``check.json`` in ``view``; ``detected``: the readings of
    :func:`uebench.bench.detectability.detect_check_sets` (``None``: not run, no such section);
    ``clean_part``: the rows of :func:`uebench.bench.clean_part.clean_part_rows` (``None``: no
    such section)."""
    checked = [r for r in rows if r["role"] == "poisoned"]
    part_table = clean_part_table(clean_part) if clean_part else None
    overview = figures.plot_overview(checked, view / "figures" / "overview.png",
                                     min_drop=min_drop, headline=HEADLINE)
    counts = {v: sum(r["verdict"] == v for r in checked) for v in dict.fromkeys(
        r["verdict"] for r in checked)}
    blocks: list[Block] = [
        ("h1", "How protected is this data?"),
        ("p", "Verdicts: " + ", ".join(f"**{v}** {n}" for v, n in counts.items())
         + f" (of {len(checked)} cells)." + detect_headline(detected or [])),
        ("p", "Rule: " + rule_text(min_drop)),
        ("table", _table(checked, "protected data", ("ud", "lp", "test_acc", "drop"))),
        ("img", overview, f"`{HEADLINE}` against the random-noise control, and the accuracy "
                          "drop, per cell with 95 % intervals; dashed: thresholds"),
        *_ratio_blocks(rows),
        *_clean_part_blocks(part_table),
        *detect_blocks(rows, detected or []),
        ("h2", "Controls and clean references"),
        ("p", "Random noise at each protected set's budget (the control every statistic is read "
              "against) and the clean model per model and defense; a clean model's UD is the "
              "defense's own effect on learnability (1 for the undefended clean run, by "
              "definition: it sets β)."),
        ("table", _table([r for r in rows if r["role"] != "poisoned"], "controls and clean data",
                         ("ud", "lp", "test_acc"))),
        *_statistics_blocks(rows),
        *_figures(view, records, store),
        ("h2", "Notes"), ("ul", notes(collected)),
    ]
    files = {"html": view / "check.html", "md": view / "check.md", "json": view / "check.json"}
    atomic_write_text(files["html"], to_html("uebench check", blocks))
    atomic_write_text(files["md"], to_markdown(blocks, relative_to=view))
    summary: dict[str, Any] = {"rule": rule_text(min_drop), "min_drop": min_drop,
                               "headline": HEADLINE, "rows": list(rows)}
    if part_table is not None:
        summary["clean_part"] = {"rows": list(clean_part or []), "header": part_table[0],
                                 "table": part_table[1]}
    if detected is not None:
        header, body = detect_table(rows, detected)
        summary["detect"] = {"rule": DETECT_RULE, "sets": list(detected)}
        summary["protected_vs_detectable"] = {"title": DETECT_TITLE, "header": header,
                                              "rows": body}
    write_json(files["json"], summary)
    return files
