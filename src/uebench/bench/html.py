"""Reports as documents: a list of blocks rendered to one self-contained HTML file (figures
embedded as base64 PNG, no external CSS or scripts) or to Markdown (figures as files).

A block is ``("h1" | "h2" | "p", text)``, ``("ul", [text, ...])``, ``("table", Table)``,
``("grid", header, rows)`` (a plain table of strings) or ``("img", path, caption)``. Text may
use ``**bold**`` and ``code`` spans, as Markdown does.
"""

from __future__ import annotations

import base64
import html
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from uebench.bench import render
from uebench.learnability.stat_report import grid_lines

Block = tuple[Any, ...]

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.8em 0 1.4em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th:first-child, tr th { text-align: left; background: #f6f6f6; }
img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; margin-bottom: 1.5em; }
code { background: #f3f3f3; padding: 0 0.2em; }
"""


def inline_html(text: str) -> str:
    """Escape, then ``**bold**`` -> <b>, ```code``` -> <code>."""
    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


def _img_html(path: Path, caption: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
            f"<figcaption>{inline_html(caption)}</figcaption></figure>")


def _grid_html(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{inline_html(h)}</th>" for h in header)
    body = "".join("<tr>" + f"<th>{inline_html(r[0])}</th>"
                   + "".join(f"<td>{inline_html(c)}</td>" for c in r[1:]) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _grid_markdown(header: Sequence[str], rows: Sequence[Sequence[str]], _: Any) -> list[str]:
    return [*grid_lines((list(header), [list(r) for r in rows])), ""]


_HTML: dict[str, Callable[..., str]] = {
    "grid": _grid_html,
    "h1": lambda text: f"<h1>{inline_html(text)}</h1>",
    "h2": lambda text: f"<h2>{inline_html(text)}</h2>",
    "p": lambda text: f"<p>{inline_html(text)}</p>",
    "ul": lambda items: "<ul>" + "".join(f"<li>{inline_html(i)}</li>" for i in items) + "</ul>",
    "table": render.html_table,
    "img": _img_html,
}

_MARKDOWN: dict[str, Callable[..., list[str]]] = {
    "grid": _grid_markdown,
    "h1": lambda text, _: [f"# {text}", ""],
    "h2": lambda text, _: [f"## {text}", ""],
    "p": lambda text, _: [text, ""],
    "ul": lambda items, _: [f"- {item}" for item in items] + [""],
    "table": lambda table, _: [render.markdown(table)],
    "img": lambda path, caption, where: [
        f"![{caption}]({os.path.relpath(path, where)})", "", f"*{caption}*", ""],
}


def to_html(title: str, blocks: Sequence[Block]) -> str:
    """One HTML page holding everything (images inline): mail it, open it offline."""
    body = [_HTML[kind](*args) for kind, *args in blocks]
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def to_markdown(blocks: Sequence[Block], *, relative_to: Path) -> str:
    """Markdown of the same blocks; images are linked relative to the Markdown file's folder."""
    lines: list[str] = []
    for kind, *args in blocks:
        lines += _MARKDOWN[kind](*args, relative_to)
    return "\n".join(lines)
