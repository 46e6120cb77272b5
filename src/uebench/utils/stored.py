"""Stored results: the numbers that README and docs quote, as small JSON files in the repository,
and the docs tables generated from them.

A stored result (``results/<name>.json``) holds the values, the command that produced them, the
commit and the machine::

    {"name": ..., "command": ..., "commit": ..., "machine": {...}, "created": ...,
     "values": {...}, "tables": {"<table>": {"header": [...], "rows": [[...], ...]}}}

A docs page includes a stored table between two markers, and :func:`render_docs` rewrites what
is between them from the JSON (``tests/test_stored_results.py`` fails if a page disagrees)::

    <!-- stored: study/validation summary -->
    | ... generated ... |
    <!-- /stored -->
"""

from __future__ import annotations

import argparse
import contextlib
import io
import platform
import re
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from uebench.errors import UebenchError
from uebench.utils.env import cpu_model, git_info
from uebench.utils.io import atomic_write_text, read_json, write_json

RESULTS_DIR = Path(__file__).resolve().parents[3] / "results"
BLOCK = re.compile(r"(<!-- stored: (\S+) (\S+) -->\n)(.*?)(<!-- /stored -->)", re.S)


def machine() -> dict[str, Any]:
    """What the numbers were measured on (cores and processor; no host name)."""
    import os

    import torch

    return {"platform": platform.platform(), "processor": platform.processor() or None,
            **cpu_model(), "cpus": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads()}


def save_result(name: str, values: Mapping[str, Any], *, command: str,
                tables: Mapping[str, tuple[Sequence[str], Sequence[Sequence[str]]]] | None = None,
                root: Path | None = None) -> Path:
    """Write ``results/<name>.json`` (atomically) with the values, the command, the commit and
    the machine; ``tables`` are (header, rows) pairs the docs include by name."""
    path = (root or RESULTS_DIR) / f"{name}.json"
    write_json(path, {
        "name": name, "command": command, "commit": git_info()["commit"], "machine": machine(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "values": dict(values),
        "tables": {k: {"header": list(h), "rows": [list(r) for r in rows]}
                   for k, (h, rows) in (tables or {}).items()}})
    return path


def command_line(script: str, argv: Sequence[str] | None) -> str:
    """The command a script's stored result records: ``python SCRIPT ARGS`` (``argv`` as the
    script was called from Python, else its own command line), shell-quoted."""
    args = sys.argv[1:] if argv is None else list(argv)
    return " ".join(["python", script, *map(shlex.quote, args)])


def load_result(name: str, root: Path | None = None) -> dict[str, Any]:
    path = (root or RESULTS_DIR) / f"{name}.json"
    if not path.is_file():
        raise UebenchError(f"no stored result {name!r} ({path}): run the command that makes it")
    return dict(read_json(path))


def markdown_lines(header: Sequence[Any], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A plain table as Markdown lines: first column left, the others right-aligned."""
    return ["| " + " | ".join(map(str, header)) + " |", "|---|" + "---:|" * (len(header) - 1),
            *("| " + " | ".join(map(str, r)) + " |" for r in rows)]


def _is_row(line: str) -> bool:
    """Whether a stripped line is a pipe-table row."""
    return line.startswith("|") and line.endswith("|")


def parse_markdown_tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every pipe table in ``text`` as (header, rows), cells stripped: the inverse of
    :func:`markdown_lines`, for scripts whose reports are Markdown (their tables are stored as
    printed, so a docs block shows exactly what the script printed)."""
    tables: list[tuple[list[str], list[list[str]]]] = []
    block: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        line = line.strip()
        if _is_row(line):
            block.append([c.strip() for c in line[1:-1].split("|")])
            continue
        # a table is a header, a separator row of dashes, then its rows
        if len(block) >= 2 and all(set(c) <= set("-:") and c for c in block[1]):
            tables.append((block[0], block[2:]))
        block = []
    return tables


def table_markdown(result: Mapping[str, Any], table: str) -> str:
    """One stored table as Markdown."""
    try:
        t = result["tables"][table]
    except KeyError:
        raise UebenchError(f"stored result {result.get('name')!r} has no table {table!r}; "
                           f"tables: {sorted(result.get('tables', {}))}") from None
    return "\n".join(markdown_lines(t["header"], t["rows"])) + "\n"


def render_text(text: str, root: Path | None = None) -> str:
    """``text`` with every stored block regenerated from its JSON."""
    def _sub(m: re.Match[str]) -> str:
        return m.group(1) + table_markdown(load_result(m.group(2), root), m.group(3)) + m.group(5)

    return BLOCK.sub(_sub, text)


def stored_blocks(text: str) -> list[tuple[str, str]]:
    """(result name, table name) of every stored block in ``text``."""
    return [(m.group(2), m.group(3)) for m in BLOCK.finditer(text)]


def render_docs(paths: Sequence[Path], root: Path | None = None) -> list[Path]:
    """Rewrite the stored blocks of ``paths`` in place; the pages that changed."""
    changed = []
    for path in paths:
        old = path.read_text(encoding="utf-8")
        new = render_text(old, root)
        if new != old:
            atomic_write_text(path, new)
            changed.append(path)
    return changed


class _Tee(io.StringIO):
    """Keeps a copy of what is written and passes it on to the stream it replaced."""

    def __init__(self, stream: Any) -> None:
        super().__init__()
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(text)
        return super().write(text)

    def flush(self) -> None:
        self._stream.flush()


@contextlib.contextmanager
def printed() -> Iterator[io.StringIO]:
    """Print as usual and keep a copy of stdout: a benchmark script's report, for
    :func:`save_printed` (the tables are stored exactly as the script printed them)."""
    tee = _Tee(sys.stdout)
    with contextlib.redirect_stdout(tee):
        yield tee


def add_save_option(parser: argparse.ArgumentParser) -> None:
    """The ``--save NAME`` option every benchmark script shares."""
    parser.add_argument("--save", default=None, metavar="NAME",
                        help="store the printed tables as results/NAME.json, with the command, "
                             "commit and machine (benchmarks/README.md renders its blocks from it)")


def save_printed(name: str, text: str, *, script: str, argv: Sequence[str] | None = None,
                 root: Path | None = None) -> Path:
    """Store a script's printed report: its pipe tables as ``table-1``, ``table-2``, … in the
    order printed, and every other non-empty line under ``values["notes"]`` (the settings and
    versions a script prints beside its tables)."""
    tables = parse_markdown_tables(text)
    if not tables:
        raise UebenchError(f"{script} printed no table to store as {name!r}")
    notes = [ln for ln in map(str.strip, text.splitlines()) if ln and not _is_row(ln)]
    return save_result(name, {"notes": notes},
                       command=command_line(script, argv),
                       tables={f"table-{i}": t for i, t in enumerate(tables, 1)}, root=root)


def report_and_store(save: str | None, script: str, body: Callable[[], Any],
                     argv: Sequence[str] | None = None) -> None:
    """Run a benchmark script's report (``body`` prints it) and, with ``--save NAME``, store
    what it printed (:func:`save_printed`; ``argv`` as for :func:`command_line`)."""
    with printed() as out:
        body()
    if save:
        print(f"stored: {save_printed(save, out.getvalue(), script=script, argv=argv)}")
