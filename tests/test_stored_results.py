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
    cpu_model,
    load_result,
    markdown_lines,
    parse_markdown_tables,
    printed,
    render_text,
    report_and_store,
    save_printed,
    save_result,
    stored_blocks,
)

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
         ROOT / "benchmarks" / "README.md"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
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
# The pages whose measured numbers must be stored: README, every page of docs/ and the
# benchmark scripts' log (each script stores what it prints with --save NAME).
POLICED = PAGES


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


@pytest.mark.parametrize("page", POLICED, ids=lambda p: str(p.relative_to(ROOT)))
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


@pytest.mark.parametrize("page", POLICED, ids=lambda p: str(p.relative_to(ROOT)))
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


# numbers benchmarks/README.md quotes in prose from a stored result's printed lines (not tables):
# (stored result, the page's sentence, the printed line) with the same groups in both
QUOTED_NOTES = [
    ("benchmarks/detect-fmnist", r"2,000-image Fashion-MNIST set took ([\d.]+) s in all",
     r"; ([\d.]+) s in all"),
    ("benchmarks/landscape", r"took ([\d.]+) s with a recorder vs ([\d.]+) s without",
     r"recorder: ([\d.]+) s vs ([\d.]+) s without"),
]


@pytest.mark.parametrize(("name", "page_re", "note_re"), QUOTED_NOTES,
                         ids=[q[0] for q in QUOTED_NOTES])
def test_benchmarks_readme_quotes_its_stored_notes(name, page_re, note_re):
    text = (ROOT / "benchmarks" / "README.md").read_text(encoding="utf-8").replace("\n", " ")
    quoted = re.search(page_re, text)
    printed = re.search(note_re, " ".join(load_result(name)["values"]["notes"]))
    assert quoted and printed and quoted.groups() == printed.groups(), (name, quoted, printed)


def test_readme_quotes_the_stored_demo_time():
    # the one number README quotes in prose: the demo's wall time, from its stored result
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    quoted = re.search(r"the default run, which took (\d+) min", text.replace("\n", " "))
    assert quoted, "README no longer says what one demo seed costs"
    assert int(quoted.group(1)) == round(load_result("demo")["values"]["seconds"] / 60)


def test_a_printed_report_is_stored_as_printed(tmp_path, capsys):
    rows = (["case", "fit img/s", "fit / plain"],
            [["lenet5", "8098", "1.21"], ["r18", "109", "1.02"]])
    with printed() as out:
        print("torch 2.13.0+cpu, threads 2\n")
        print("\n".join(markdown_lines(*rows)))
        print("\n| defense | img/s |\n|---|---:|\n| cutout | 310 |\n\nbest of 2, interleaved")
    # the report still reaches the terminal, whole
    assert capsys.readouterr().out == out.getvalue() and "| r18 | 109 | 1.02 |" in out.getvalue()
    save_printed("bench/x", out.getvalue(), script="benchmarks/x.py", argv=["--repeats", "2"],
                 root=tmp_path)
    stored = load_result("bench/x", tmp_path)
    assert stored["tables"]["table-1"] == {"header": rows[0], "rows": rows[1]}
    assert stored["tables"]["table-2"] == {"header": ["defense", "img/s"],
                                           "rows": [["cutout", "310"]]}
    assert stored["values"]["notes"] == ["torch 2.13.0+cpu, threads 2", "best of 2, interleaved"]
    assert stored["command"] == "python benchmarks/x.py --repeats 2" and stored["machine"]["cpus"]
    with pytest.raises(UebenchError, match="printed no table"):
        save_printed("bench/y", "only prose\n", script="benchmarks/x.py", root=tmp_path)


def test_report_and_store_stores_only_when_asked(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("uebench.utils.stored.RESULTS_DIR", tmp_path)
    table = "| case | img/s |\n|---|---:|\n| lenet5 | 8098 |"
    report_and_store(None, "benchmarks/x.py", lambda: print(table), argv=[])
    assert not list(tmp_path.rglob("*.json")) and table in capsys.readouterr().out
    report_and_store("bench/x", "benchmarks/x.py", lambda: print(table), argv=["--quick"])
    assert "stored: " in capsys.readouterr().out
    stored = load_result("bench/x", tmp_path)
    assert stored["tables"]["table-1"]["rows"] == [["lenet5", "8098"]]
    assert stored["command"] == "python benchmarks/x.py --quick"


def test_cpu_model_reads_the_name_and_the_bf16_flags():
    amx = ("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\n"
           "flags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n\n"
           "processor\t: 1\nmodel name\t: other\nflags\t\t: fpu\n")
    assert cpu_model(amx) == {"cpu": "Intel(R) Xeon(R) Processor",
                              "bf16_flags": ["avx512_bf16", "amx_bf16"]}
    zen3 = "model name\t: AMD EPYC 7B13 64-Core Processor\nflags\t\t: fpu avx2 fma\n"
    assert cpu_model(zen3) == {"cpu": "AMD EPYC 7B13 64-Core Processor", "bf16_flags": []}
    assert cpu_model("") == {"cpu": None, "bf16_flags": []}


# scripts that write their own JSON, with the option that names it: the device scripts, and the
# engine of sal_engines.py --sweep (benchmarks/results/sal_sweep.json)
OWN_OUTPUT = {"gpu_check.py": '"--out"', "table1_gpu.py": '"--out"', "sal_sweep.py": "write_json("}


def test_every_benchmark_script_can_store_what_it_prints():
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        if path.name in OWN_OUTPUT:
            assert OWN_OUTPUT[path.name] in text, path.name
            continue
        assert "add_save_option(" in text or '"--save"' in text, (
            f"benchmarks/{path.name} has no --save: its numbers cannot become a stored result "
            "(uebench.utils.stored.add_save_option + report_and_store)")


@pytest.mark.parametrize("page", ["README.md", "docs/findings.md"])
def test_pages_quote_the_stored_20000_image_uds(page):
    # the data-size study's headline in prose: UD of EM and OPS and of their controls at 20,000
    # images, each to two decimals of the stored cell's mean
    text = re.sub(r"\s+", " ", (ROOT / page).read_text(encoding="utf-8"))
    quoted = re.search(r"UD reads EM at ([\d.]+) and OPS at ([\d.]+) against (?:their )?"
                       r"controls(?:')? (?:at )?([\d.]+) and ([\d.]+)", text)
    assert quoted, f"{page} no longer quotes the 20,000-image UDs"
    cells = {c["method"]: c for c in load_result("datasize/cifar")["values"]["cells"]
             if str(c["setting"].get("train_size")) == "20000"}
    stored = [f"{cells[m]['ud']['mean']:.2f}" for m in ("em", "ops", "random", "random-l0")]
    assert list(quoted.groups()) == stored
