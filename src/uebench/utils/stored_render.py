"""``python -m uebench.utils.stored_render``: rewrite every stored table in README.md, docs/ and
benchmarks/README.md from its ``results/*.json`` (run after re-measuring)."""

from __future__ import annotations

import sys

from uebench.errors import UebenchError
from uebench.utils.stored import RESULTS_DIR, render_docs


def main() -> int:
    root = RESULTS_DIR.parent
    pages = [root / "README.md", *sorted((root / "docs").glob("*.md")),
             root / "benchmarks" / "README.md"]
    failed = 0
    for page in (p for p in pages if p.is_file()):
        try:
            for changed in render_docs([page]):
                print(f"rewrote {changed}")
        except UebenchError as exc:
            print(f"{page}: {exc}", file=sys.stderr)
            failed += 1
    return 2 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
