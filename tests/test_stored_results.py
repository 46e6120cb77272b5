"""Every table that README and docs include from a stored result (``results/*.json``) agrees with
that file, and the stored-result machinery round-trips."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from uebench.errors import UebenchError
from uebench.utils.stored import (
    RESULTS_DIR,
    load_result,
    markdown_lines,
    parse_markdown_tables,
    render_text,
    save_result,
    stored_blocks,
)

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
         ROOT / "benchmarks" / "README.md"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_docs_tables_match_their_stored_results(page):
    text = page.read_text(encoding="utf-8")
    assert render_text(text) == text, (
        f"{page.name}: a stored table differs from its results/*.json; regenerate with "
        "`python -m uebench.utils.stored_render` (or fix the JSON's command and re-run it)")


def test_every_stored_result_names_its_command_commit_and_machine():
    for path in sorted(RESULTS_DIR.rglob("*.json")):
        name = str(path.relative_to(RESULTS_DIR).with_suffix(""))
        result = load_result(name)
        assert result["command"] and result["machine"]["cpus"] and "values" in result, path


def test_stored_blocks_round_trip(tmp_path):
    save_result("demo/x", {"a": 1}, command="uebench demo", root=tmp_path,
                tables={"t": (["run", "acc"], [["clean", "83.5"], ["em", "35.7"]])})
    page = ("intro\n<!-- stored: demo/x t -->\nstale\n<!-- /stored -->\nend\n")
    assert stored_blocks(page) == [("demo/x", "t")]
    fresh = render_text(page, tmp_path)
    assert "| em | 35.7 |" in fresh and "stale" not in fresh
    assert render_text(fresh, tmp_path) == fresh
    with pytest.raises(UebenchError, match="no table 'u'"):
        render_text(page.replace(" t -->", " u -->"), tmp_path)
    with pytest.raises(UebenchError, match="no stored result"):
        render_text(page.replace("demo/x", "demo/y"), tmp_path)


UNSTORED = "<!-- unstored:"  # a section's marker: its tables predate stored results (see below)
CHECKED = "<!-- checked:"  # opens a block of tables a named test checks (closed by /checked)
# The pages whose measured numbers must be stored: README and every page of docs/.
# benchmarks/README.md is the benchmark scripts' own log (command beside every table) and is
# rendered from stored results where a block says so, but not yet policed row by row.
POLICED = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _loose_number_rows(text: str) -> dict[str, int]:
    """Table rows with a decimal number outside a stored or checked block, per ``## `` section
    whose text carries no unstored marker."""
    sections: dict[str, list[str]] = {}
    heading = "(top)"
    for line in text.splitlines():
        if line.startswith("## "):
            heading = line
        sections.setdefault(heading, []).append(line)
    loose: dict[str, int] = {}
    for heading, lines in sections.items():
        if any(line.startswith(UNSTORED) for line in lines):
            continue
        inside = False
        for line in lines:
            if line.startswith(("<!-- stored:", CHECKED)):
                inside = True
            elif line.startswith(("<!-- /stored", "<!-- /checked")):
                inside = False
            elif line.startswith("|") and not inside and _has_data_cell(line):
                loose[heading] = loose.get(heading, 0) + 1
    return loose


def _has_data_cell(row: str) -> bool:
    """Whether a table row holds a measured-looking value: a cell of numbers only (with signs,
    ±, intervals, units like % or x) with a decimal point. Code spans are settings, not data;
    prose cells ("L2 1.0", "arXiv 1512.03385") are descriptions."""
    if row.startswith("|---"):
        return False
    cells = [re.sub(r"`[^`]*`|\*\*", "", c).strip() for c in row.strip().strip("|").split("|")]
    return any(re.search(r"\d\.\d", c) and re.fullmatch(r"[-+−±\d.,/\[\]()%x× ]+", c)
               for c in cells)


def _checked_blocks(text: str) -> list[str]:
    """The ``tests/FILE.py::NAME`` references of a page's checked blocks."""
    return [line[len(CHECKED):].split("-->")[0].strip() for line in text.splitlines()
            if line.startswith(CHECKED)]


@pytest.mark.parametrize("page", POLICED, ids=lambda p: p.name)
def test_every_numeric_table_is_stored_checked_or_marked_historical(page):
    # a table of measured numbers comes from a stored result; a table of specified numbers (the
    # paper's values, defaults, model sizes) sits in a block naming the test that checks it; the
    # older findings sections whose runs predate stored results say so with an unstored marker
    # naming how to regenerate them
    loose = _loose_number_rows(page.read_text(encoding="utf-8"))
    assert not loose, (f"{page.name}: tables of numbers outside a stored block in {loose}: store "
                       "the result (uebench.utils.stored.save_result) and include it, put a table "
                       f"of specified numbers in a '{CHECKED} tests/FILE.py::TEST -->' block whose "
                       f"test checks it, or mark a history section '{UNSTORED} how to regenerate "
                       "-->'")


@pytest.mark.parametrize("page", POLICED, ids=lambda p: p.name)
def test_every_checked_block_names_a_test_that_reads_the_page(page):
    text = page.read_text(encoding="utf-8")
    assert text.count(CHECKED) == text.count("<!-- /checked"), f"{page.name}: unclosed block"
    for ref in _checked_blocks(text):
        file, _, name = ref.partition("::")
        path = ROOT / file
        assert path.is_file() and name, f"{page.name}: checked block names {ref!r}, no such file"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        funcs = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        assert name in funcs, f"{page.name}: checked block names {ref!r}, no such test"
        # the test must read this page (not merely exist): its source names the page's file
        assert page.name in ast.get_source_segment(path.read_text(encoding="utf-8"),
                                                   funcs[name]), (
            f"{ref} does not read {page.name}")


def test_loose_number_rows_oracle():
    page = ("## a\n| x | 1.5 |\n## b\n<!-- stored: r t -->\n| y | 2.5 |\n<!-- /stored -->\n"
            "## c\n<!-- unstored: old -->\n| z | 3.5 |\n## d\n| cmd | `--r 0.5` |\n"
            "## e\n<!-- checked: tests/t.py::f -->\n| w | 4.5 |\n<!-- /checked -->\n| v | 5.5 |\n"
            "## f\n| lsp | L2 1.304 at 3×32×32 | arXiv 1512.03385 |\n"
            "## g\n| em − random | -0.24 [-0.41, +0.07] | 0.62 / 0.187 | 98 % |\n")
    assert _loose_number_rows(page) == {"## a": 1, "## e": 1, "## g": 1}
    assert _checked_blocks(page) == ["tests/t.py::f"]


def test_parse_markdown_tables_inverts_markdown_lines():
    a = (["run", "acc ↑"], [["clean", "83.5"], ["em", "35.7"]])
    b = (["poison", "d"], [["ops", "+0.0190 ± 0.0130"]])
    text = "\n".join(["# title", "", *markdown_lines(*a), "", "prose | with a pipe",
                      *markdown_lines(*b), "- note"])
    assert parse_markdown_tables(text) == [(a[0], a[1]), (b[0], b[1])]
    # a pipe line without the separator row is not a table
    assert parse_markdown_tables("| a | b |\n| c | d |\n") == []


def test_readme_quotes_the_stored_demo_time():
    # the one number README quotes in prose: the demo's wall time, from its stored result
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    quoted = re.search(r"the default run, which took (\d+) min", text.replace("\n", " "))
    assert quoted, "README no longer says what one demo seed costs"
    assert int(quoted.group(1)) == round(load_result("demo")["values"]["seconds"] / 60)
