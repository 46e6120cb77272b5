"""The repository is self-contained: code, tests and docs never send a reader to the developers'
private notes, which a user who clones the repository does not have. What those notes said that a
user needs is written into docs/ (docs/contributing.md, "House rules").

The note names are assembled from pieces below, so that this file does not name them itself.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("src", "docs", "tests", "benchmarks", "experiments", "README.md")
SKIPPED_PARTS = {"__pycache__", ".pytest_cache", ".ruff_cache"}
SKIPPED_SUFFIXES = {".pyc", ".pyo", ".so", ".png", ".pdf", ".pt", ".npz", ".gz"}

MD = ".md"
NOTE_NAMES = ("sal" + "_protocol" + MD, "attacks" + "_and_" + "defenses" + MD, "sty" + "le" + MD,
              "da" + "ta" + MD)
NOTES_FOLDER = "shared" + "/" + "reference"
# a note name, with whatever relative path stands before it; not the tail of a longer name
# (``metadata`` + MD is a different file)
NOTE_REFERENCE = re.compile(
    r"((?:[\w.-]+/)*)(?<![\w-])(" + "|".join(re.escape(n) for n in NOTE_NAMES) + r")")


def scanned_files() -> list[Path]:
    files: list[Path] = []
    for entry in SCANNED:
        path = ROOT / entry
        candidates = sorted(path.rglob("*")) if path.is_dir() else [path]
        for f in candidates:
            parts = set(f.relative_to(ROOT).parts)
            if not f.is_file() or parts & SKIPPED_PARTS or f.suffix in SKIPPED_SUFFIXES:
                continue
            if any(p.endswith(".egg-info") for p in parts):  # build output, copied from README
                continue
            files.append(f)
    return files


def in_repository(source: Path, prefix: str, name: str) -> bool:
    """Whether ``prefix + name`` is a file of this repository (relative to the citing file or to
    the repository root): a page of ours that happens to share a note's name is fine."""
    for base in (source.parent, ROOT):
        target = (base / (prefix + name)).resolve()
        if target.is_file() and target.is_relative_to(ROOT):
            return True
    return False


def outside_references(path: Path) -> list[str]:
    """``line: text`` of every line of ``path`` that points to a note outside the repository."""
    text = path.read_bytes().decode("utf-8", errors="replace")
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        named = [m for m in NOTE_REFERENCE.finditer(line)
                 if not in_repository(path, m.group(1), m.group(2))]
        if named or NOTES_FOLDER in line:
            found.append(f"{number}: {line.strip()[:120]}")
    return found


def test_the_scan_covers_the_repository():
    files = {f.relative_to(ROOT).as_posix() for f in scanned_files()}
    assert "README.md" in files and "docs/sal.md" in files
    assert "tests/test_self_contained.py" in files  # this file is scanned too
    assert any(f.startswith("src/uebench/") for f in files)


def test_the_pattern_finds_what_it_should(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("\n".join([
        "see " + NOTE_NAMES[0] + " §2",  # a bare note name
        "layout: ../" + NOTES_FOLDER + "/" + NOTE_NAMES[3],  # the notes' folder
        "as in " + NOTES_FOLDER,  # the folder alone
        "a different file: meta" + NOTE_NAMES[3] + ", my-" + NOTE_NAMES[2],
    ]))
    assert [line.split(":")[0] for line in outside_references(page)] == ["1", "2", "3"]


def test_no_reference_to_notes_outside_the_repository():
    found = {path.relative_to(ROOT).as_posix(): lines
             for path in scanned_files() if (lines := outside_references(path))}
    assert not found, (
        "these files point to developer notes a user does not have:\n"
        + "\n".join(f"  {name}:{line}" for name, lines in found.items() for line in lines)
        + "\nWrite what the reader needs into docs/ in this repository's words and point there "
        "(e.g. docs/sal.md, \"The origin\").")
