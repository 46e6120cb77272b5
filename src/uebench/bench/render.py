"""Render tables as Markdown, LaTeX, HTML and CSV (long form), numbers formatted one way.

An entry reads ``mean ± std [ci_low, ci_high]`` (test accuracy in %, 2 decimals; #LP 2; UD 3),
with ``(+0.186)`` appended for a UD change; a single seed shows the mean alone and an empty entry
``–``. The paper's bold marks the smallest UD of a column (or row, Table 3).
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Mapping, Sequence
from typing import Any

from uebench.bench.tables import METRIC_TITLES, Entry, Table

DIGITS = {"test_acc": 2, "lp": 2, "ud": 3, "ud_change": 3, "drop": 2}
SCALE = {"test_acc": 100.0, "drop": 100.0}


def number(value: float | None, metric: str, *, signed: bool = False) -> str:
    if value is None:
        return "–"
    value *= SCALE.get(metric, 1.0)
    return f"{value:+.{DIGITS[metric]}f}" if signed else f"{value:.{DIGITS[metric]}f}"


def parts(entry: Entry) -> tuple[str, str, str, str]:
    """(mean, std, interval, change) as text; empty strings where there is nothing to show."""
    s = entry.summary
    if entry.text is not None:
        return entry.text, "", "", ""
    if s is None:
        return "–", "", "", ""
    mean = number(s["mean"], entry.metric)
    std = "" if s.get("std") is None else number(s["std"], entry.metric)
    ci = ""
    if s.get("ci_low") is not None and s.get("ci_high") is not None:
        ci = f"[{number(s['ci_low'], entry.metric)}, {number(s['ci_high'], entry.metric)}]"
    change = ""
    if entry.change is not None:
        change = number(entry.change["mean"], "ud_change", signed=True)
    return mean, std, ci, change


def entry_text(entry: Entry) -> str:
    mean, std, ci, change = parts(entry)
    text = mean + (f" ± {std}" if std else "") + (f" {ci}" if ci else "")
    return text + (f" ({change})" if change else "")


def _header(table: Table) -> tuple[list[str], int]:
    cols = [METRIC_TITLES[m] for m in table.metrics]
    grouped = len(table.groups) > 1 or table.groups != [""]
    if grouped:
        return [f"{g}: {c}" for g in table.groups for c in cols], len(cols)
    return cols, len(cols)


def markdown(table: Table) -> str:
    header, _ = _header(table)
    lines = [f"### {table.title}", ""] if table.title else []
    lines += ["| " + " | ".join([table.row_title, *header]) + " |",
              "|" + "---|" + "---:|" * len(header)]
    for label, entries in table.rows:
        cells = [f"**{entry_text(e)}**" if e.bold else entry_text(e) for e in entries]
        lines.append("| " + " | ".join([label, *cells]) + " |")
    return "\n".join(lines) + "\n"


_LATEX_ESCAPES = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
                  "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}", "\\": r"\textbackslash{}"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)


def _latex_entry(entry: Entry) -> str:
    if entry.text is not None:
        return latex_escape(entry.text)
    mean, std, ci, change = parts(entry)
    text = rf"\textbf{{{mean}}}" if entry.bold else mean
    if std:
        text += rf"$\pm${std}"
    if change:
        text += rf"$_{{{change}}}$"
    if ci:
        text += rf" {{\scriptsize {ci}}}"
    return text.replace("–", "--")


def latex(table: Table) -> str:
    """A ``tabular`` (booktabs) with multicolumn group headers, as the paper's tables."""
    header, k = _header(table)
    grouped = table.groups != [""]
    spec = "l" + "r" * len(header)
    lines = [rf"% {latex_escape(table.title)}" if table.title else "%",
             rf"\begin{{tabular}}{{{spec}}}", r"\toprule"]
    if grouped:
        heads = [rf"\multicolumn{{{k}}}{{c}}{{{latex_escape(g)}}}" for g in table.groups]
        lines.append(" & ".join(["", *heads]) + r" \\")
        sub = [latex_escape(METRIC_TITLES[m]) for m in table.metrics] * len(table.groups)
    else:
        sub = [latex_escape(h) for h in header]
    lines += [" & ".join([latex_escape(table.row_title), *sub]) + r" \\", r"\midrule"]
    for label, entries in table.rows:
        lines.append(" & ".join([latex_escape(label), *map(_latex_entry, entries)]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def html_table(table: Table) -> str:
    header, _ = _header(table)
    out = [f"<h3>{html.escape(table.title)}</h3>" if table.title else "", "<table>", "<tr>"]
    out += [f"<th>{html.escape(h)}</th>" for h in [table.row_title, *header]] + ["</tr>"]
    for label, entries in table.rows:
        cells = [f"<td>{'<b>' if e.bold else ''}{html.escape(entry_text(e))}"
                 f"{'</b>' if e.bold else ''}</td>" for e in entries]
        out.append(f"<tr><th>{html.escape(label)}</th>{''.join(cells)}</tr>")
    out.append("</table>")
    return "\n".join(out) + "\n"


CSV_FIELDS = ("test_acc", "lp", "ud", "ud_change")


def long_csv(cells: Sequence[Mapping[str, Any]], axes: Sequence[str]) -> str:
    """One row per cell: its labels, then n, mean, std, ci_low, ci_high and per-seed values of
    test_acc (fraction), lp, ud and ud_change."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    stats = ("n", "mean", "std", "ci_low", "ci_high")
    columns = [f"{f}_{s}" for f in CSV_FIELDS for s in (*stats, "per_seed")]
    writer.writerow([*axes, "seeds", *columns])
    for c in cells:
        row: list[Any] = [c["labels"].get(a, "") for a in axes]
        row.append(" ".join(map(str, c["seeds"])))
        for f in CSV_FIELDS:
            s = c[f]
            row += ["" if s.get(k) is None else repr(s[k]) if k != "n" else s[k] for k in stats]
            row.append(" ".join("" if v is None else repr(v) for v in c[f"{f}_per_seed"]))
        writer.writerow(row)
    return buf.getvalue()
