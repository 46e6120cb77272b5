"""``python -m uebench.utils.stored_render``: rewrite every stored table in README.md, docs/ and
benchmarks/README.md from its ``results/*.json`` (run after re-measuring)."""

from __future__ import annotations

from uebench.utils.stored import RESULTS_DIR, render_docs


def main() -> int:
    root = RESULTS_DIR.parent
    pages = [root / "README.md", *sorted((root / "docs").glob("*.md")),
             root / "benchmarks" / "README.md"]
    for page in render_docs([p for p in pages if p.is_file()]):
        print(f"rewrote {page}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
