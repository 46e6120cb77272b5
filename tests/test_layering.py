"""The package's layers: what may import what (checked on the source, not at run time).

- ``uebench.poisons`` (the store) depends only on data, errors and utils;
- training and the learnability metrics never import an attack (an attack imports training to
  fit its surrogate, so the reverse would close a loop); evaluation sits above the attacks (it
  generates the random-noise controls) and the attacks never import it;
- ``import uebench`` does not load matplotlib, scikit-learn, kornia or ray (figures, clustering,
  augmentations and clusters load them when used).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "uebench"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return {n for n in names if n.startswith("uebench")}


def _files(*parts: str) -> list[Path]:
    out = []
    for part in parts:
        p = SRC / part
        out += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    return out


@pytest.mark.parametrize("path", _files("poisons"), ids=lambda p: p.name)
def test_poisons_depend_only_on_data(path):
    allowed = ("uebench.poisons", "uebench.data", "uebench.errors", "uebench.utils",
               "uebench.__version__", "uebench.version")
    bad = [m for m in _imports(path) if not m.startswith(allowed) and m != "uebench"]
    assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize("path", _files("train", "learnability"), ids=lambda p: p.name)
def test_training_and_metrics_never_import_attacks(path):
    bad = [m for m in _imports(path) if m.startswith("uebench.attacks")]
    assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize("path", _files("attacks"), ids=lambda p: p.name)
def test_attacks_never_import_evaluation(path):
    bad = [m for m in _imports(path) if m.startswith(("uebench.evaluation", "uebench.controls",
                                                      "uebench.bench"))]
    assert not bad, f"{path.name} imports {bad}"


def test_import_is_light():
    code = ("import sys, uebench; heavy = [m for m in ('matplotlib', 'sklearn', 'kornia', 'ray')"
            " if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
