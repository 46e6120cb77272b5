"""Every table that README and docs include from a stored result (``results/*.json``) agrees with
that file, and the stored-result machinery round-trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from uebench.errors import UebenchError
from uebench.utils.stored import (
    RESULTS_DIR,
    load_result,
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
