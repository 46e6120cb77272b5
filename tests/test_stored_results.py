"""Every table that README and docs include from a stored result (``results/*.json``) agrees with
that file, and the stored-result machinery round-trips."""

from __future__ import annotations

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


def _loose_number_rows(text: str) -> dict[str, int]:
    """Table rows with a decimal number outside a stored block, per ``## `` section whose text
    carries no unstored marker."""
    import re

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
            if line.startswith("<!-- stored:"):
                inside = True
            elif line.startswith("<!-- /stored"):
                inside = False
            elif (line.startswith("|") and not inside and not line.startswith("|---")
                  and re.search(r"\d\.\d", re.sub(r"`[^`]*`", "", line))):  # code: no data
                loose[heading] = loose.get(heading, 0) + 1
    return loose


@pytest.mark.parametrize("page", [ROOT / "README.md", ROOT / "docs" / "findings.md"],
                         ids=lambda p: p.name)
def test_every_numeric_table_is_stored_or_marked_historical(page):
    # a table of measured numbers comes from a stored result; the older findings sections whose
    # runs predate stored results say so with an unstored marker naming how to regenerate them
    loose = _loose_number_rows(page.read_text(encoding="utf-8"))
    assert not loose, (f"{page.name}: tables of numbers outside a stored block in {loose}: store "
                       "the result (uebench.utils.stored.save_result) and include it, or mark the "
                       f"section '{UNSTORED} how to regenerate -->'")


def test_loose_number_rows_oracle():
    page = ("## a\n| x | 1.5 |\n## b\n<!-- stored: r t -->\n| y | 2.5 |\n<!-- /stored -->\n"
            "## c\n<!-- unstored: old -->\n| z | 3.5 |\n## d\n| cmd | `--r 0.5` |\n")
    assert _loose_number_rows(page) == {"## a": 1}


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
    import re

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    quoted = re.search(r"the default run, which took (\d+) min", text.replace("\n", " "))
    assert quoted, "README no longer says what one demo seed costs"
    assert int(quoted.group(1)) == round(load_result("demo")["values"]["seconds"] / 60)
