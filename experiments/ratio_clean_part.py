"""The ratio study against the clean part alone: each protected share of a replace grid beside
the same share dropped (its ``poison_mix: drop`` twin), seed by seed, from their stored results.

    python experiments/ratio_clean_part.py ratio/lenet ratio/lenet-drop \
        --save ratio/lenet-clean-part

(docs/findings.md §13; uebench.bench.clean_part says what each reading means.)
"""

from __future__ import annotations

import argparse

from uebench.bench.clean_part import clean_part_rows, clean_part_table
from uebench.utils.stored import command_line, load_result, markdown_lines, save_result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("replace", help="stored result of the replace grid (results/NAME.json)")
    ap.add_argument("drop", help="stored result of its drop twin")
    ap.add_argument("--save", default=None, metavar="NAME", help="store as results/NAME.json")
    args = ap.parse_args(argv)
    rows = clean_part_rows(load_result(args.replace)["values"]["cells"],
                           load_result(args.drop)["values"]["cells"])
    table = clean_part_table(rows)
    print("\n".join(markdown_lines(*table)))
    if args.save:
        command = command_line("experiments/ratio_clean_part.py", argv)
        path = save_result(args.save, {"rows": rows, "replace": args.replace, "drop": args.drop},
                           command=command, tables={"clean-part": table})
        print(f"stored: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
