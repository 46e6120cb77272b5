"""The trainer's view in ``uebench check``: how detectable each protected set is, next to how
protected it is (docs/bench.md, "Protected vs detectable").

A protection is worth less if a trainer notices it and drops the data. For every protected set a
check evaluates, and every random-noise control, the detectors of ``uebench detect``
(:mod:`uebench.detect`, docs/detect.md) read the whole poisoned training set (the check's
dataset, subset and seed: the poison's manifest gives them) against clean reference subsets drawn
as ``uebench detect`` draws them; the report sets each detector's score against its threshold
beside the set's verdict of protection and accuracy drop. The controls are a sanity line: random
noise should not be flagged.

Each reading lives in ``VIEW/detect/<set>-<key>/`` in the format of ``uebench detect --out``
(``detect.json``, sample scores); ``key`` hashes the poison's content (or store key) and the
detect settings, so a rerun reuses it. A reading is written under a hidden temporary name and
renamed into place once complete: a folder without its ``detect.json`` is never left behind.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from uebench.bench.axes import Method
from uebench.bench.graph import external_poison_ref, poison_spec
from uebench.bench.grid import Grid, expand
from uebench.bench.html import Block
from uebench.bench.store import Store, job_key
from uebench.detect.api import DEFAULT_REFERENCES, detect
from uebench.detect.base import DETECTORS
from uebench.detect.report import RULE
from uebench.errors import UebenchError
from uebench.learnability.stats import format_summary
from uebench.utils.io import read_json

DETECT_DIR = "detect"
DETECT_DEVICE = "cpu"  # deterministic given the seed; the detectors' models are small
TITLE = "Protected vs detectable"
CONTROL = "control (random noise)"


def detect_targets(grid: Grid, store: Store) -> list[tuple[Method, Path, str | None]]:
    """(method, poison directory, content reference) of every protected set and random-noise
    control of a check grid, as whole sets; the reference is ``None`` for a control whose poison
    the store does not hold complete (its job failed)."""
    cfgs: dict[str, Any] = {}
    for cell in expand(grid):
        cfgs.setdefault(cell.method.name, cell.cfg)
    out: list[tuple[Method, Path, str | None]] = []
    for method in grid.methods:
        if method.vanilla:
            continue
        if method.path is not None:
            path = Path(method.path).resolve()
            out.append((method, path, external_poison_ref(path, store)))
            continue
        key = job_key("poison", poison_spec(method, cfgs[method.name]))
        built = store.is_complete("poison", key)
        out.append((method, store.path("poison", key), f"poison:{key}" if built else None))
    return out


def _folder_name(method: str, key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "-", method) + "-" + key[:12]


def _detect_into(folder: Path, poison: Path, data_dir: str | None) -> None:
    """``uebench detect POISON --out folder``, written whole or not at all."""
    partial = folder.parent / f".{folder.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)  # an interrupted earlier attempt
    detect(poison, data_dir=data_dir, references=DEFAULT_REFERENCES, device=DETECT_DEVICE,
           out=partial, threads=1)
    shutil.rmtree(folder, ignore_errors=True)  # never complete (no detect.json): replaced
    os.replace(partial, folder)


def _reading(report: Mapping[str, Any]) -> dict[str, Any]:
    """What the check keeps of a ``detect.json``: the verdict and each detector's score."""
    return {"flagged": report["flagged"], "flagged_by": report["flagged_by"],
            "detectors": [{k: d[k] for k in ("name", "statistic", "value", "reference", "score",
                                              "threshold", "flagged")}
                          for d in report["detectors"]],
            "references": report["references"], "seconds": report["seconds"]}


def detect_check_sets(grid: Grid, store: Store, view: Path, *, data_dir: str | None = None,
                      progress: bool = True) -> list[dict[str, Any]]:
    """Run (or reuse) ``uebench detect`` on every protected set and control of a check.

    Returns one entry per set: ``method``, ``role`` (``protected`` | ``control``), ``poison``
    (its directory), and either ``dir`` (the reading's folder), ``key``, ``reused``,
    ``flagged``, ``flagged_by`` and ``detectors`` (per detector ``name``, ``score``,
    ``threshold``, ``flagged``, ...) or ``error`` (why it was not read).
    """
    names = DETECTORS.names()
    out = []
    for method, path, ref in detect_targets(grid, store):
        entry: dict[str, Any] = {"method": method.name,
                                 "role": "protected" if method.path else "control",
                                 "poison": str(path)}
        if ref is None:
            out.append({**entry, "error": "its poison was not built (a failed job: rerun)"})
            continue
        key = job_key("check-detect", {"poison": ref, "detectors": names,
                                       "references": DEFAULT_REFERENCES,
                                       "device": DETECT_DEVICE})
        folder = view / DETECT_DIR / _folder_name(method.name, key)
        reused = (folder / "detect.json").is_file()
        t0 = time.perf_counter()
        if not reused:
            try:
                _detect_into(folder, path, data_dir)
            except UebenchError as exc:  # e.g. too few images per class: the check goes on
                out.append({**entry, "error": str(exc)})
                continue
        got = {**entry, "dir": str(folder), "key": key, "reused": reused,
               **_reading(read_json(folder / "detect.json"))}
        out.append(got)
        if progress:
            how = "reused" if reused else f"{time.perf_counter() - t0:.1f} s"
            print(f"detect {method.name}: {_verdict(got, bold=False)} ({how})", file=sys.stderr)
    return out


def _verdict(entry: Mapping[str, Any], *, bold: bool = True) -> str:
    if "error" in entry:
        return f"not read: {entry['error']}"
    if not entry["flagged"]:
        return "not flagged"
    word = "**flagged**" if bold else "FLAGGED"
    return f"{word} by {', '.join(entry['flagged_by'])}"


def _score(d: Mapping[str, Any] | None) -> str:
    if d is None:
        return "—"
    return f"{d['score']:+.3f} / {d['threshold']:.3f}" + (" **flagged**" if d["flagged"] else "")


def detect_table(rows: Sequence[Mapping[str, Any]], sets: Sequence[Mapping[str, Any]]
                 ) -> tuple[list[str], list[list[str]]]:
    """Per protected cell at the highest checked share (the whole set, normally), then per
    control: the verdict of protection, the accuracy drop, each detector's score / threshold
    and the overall detect verdict of that set."""
    by_method = {s["method"]: s for s in sets}
    names = list(dict.fromkeys(d["name"] for s in sets for d in s.get("detectors", [])))
    cells = [r for r in rows if r["role"] in ("poisoned", "control") and r["method"] in by_method]
    top = max((r["ratio"] for r in cells if r["ratio"] is not None), default=None)
    body = []
    for r in sorted(cells, key=lambda r: r["role"] != "poisoned"):  # protected sets first
        if r["ratio"] != top:
            continue
        entry = by_method[r["method"]]
        found = {d["name"]: d for d in entry.get("detectors", [])}
        body.append([r["label"], r.get("verdict") or CONTROL, format_summary(r["drop"], 1, 100),
                     *(_score(found.get(n)) for n in names), _verdict(entry)])
    header = ["protected set", "protection", "acc drop (points)",
              *(f"{n}: score / threshold" for n in names), "detect verdict"]
    return header, body


def detect_blocks(rows: Sequence[Mapping[str, Any]], sets: Sequence[Mapping[str, Any]]
                  ) -> list[Block]:
    """The report's section "Protected vs detectable" (empty without readings)."""
    header, body = detect_table(rows, sets)
    if not body:
        return []
    return [("h2", TITLE),
            ("p", "The owner's view beside the trainer's: per protected set its verdict of "
                  "protection and accuracy drop (points, over seeds), and how `uebench detect` "
                  "(docs/detect.md) reads the whole protected training set: each detector's "
                  "score (its statistic minus the mean over clean reference subsets) against "
                  "its threshold. A set any detector flags can be noticed, and dropped, by whoever "
                  "trains on it. The random-noise controls should not be flagged. Rule: "
                  f"{RULE}. Readings in `{DETECT_DIR}/` beside this report (reused by a rerun)."),
            ("grid", header, body)]


def detect_headline(sets: Sequence[Mapping[str, Any]]) -> str:
    """`` Detectable: flagged k of n protected sets ...`` for the verdict line ('' without
    readings)."""
    read = [s for s in sets if s["role"] == "protected" and "error" not in s]
    if not read:
        return ""
    flagged = sum(bool(s["flagged"]) for s in read)
    return (f" Detectable (`uebench detect`): **flagged** {flagged} of {len(read)} protected "
            f"sets (section \"{TITLE}\").")


def detect_summary(rows: Sequence[Mapping[str, Any]], sets: Sequence[Mapping[str, Any]]
                   ) -> list[str]:
    """The table in a few terminal lines: set, protection, drop, detect verdict."""
    _, body = detect_table(rows, sets)
    return [f"  {line[0]}: {line[1]}, drop {line[2]} points; detect: "
            + line[-1].replace("**flagged**", "FLAGGED") for line in body]
