"""``uebench detect DATA [--poison DIR]``: the command line of :func:`uebench.detect.detect`.

    uebench detect fashion-mnist --train-size 2000                    (the clean subset)
    uebench detect fashion-mnist --train-size 2000 --poison POISON    (a poison made for it)
    uebench detect POISON                 (the same: dataset, size and seed from its manifest)
    uebench detect --list                                             (the detectors)

Prints, per detector, the statistic on the set, its clean reference, the score (the difference),
the threshold and the verdict, then the overall verdict; ``--out DIR`` also writes
``detect.json`` and the sample-level scores (docs/detect.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from uebench.commandline import add_flag, command, int_list
from uebench.detect.api import DEFAULT_REFERENCES, detect
from uebench.detect.base import DETECTORS
from uebench.detect.study import detection_study, study_tables
from uebench.errors import UebenchError
from uebench.utils.stored import markdown_lines, save_result


def _detect_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", nargs="?", default=None,
                   help="a dataset name (uebench datasets) or a poison directory")
    p.add_argument("--poison", default=None,
                   help="a poison directory made for DATA's subset: detect on the poisoned set")
    add_flag(p, "train_size", help="stratified seeded training subset (default: the poison's)")
    add_flag(p, "data_dir")
    add_flag(p, "seed", help="subset seed, also the detectors' seed (default 0, or the poison's)")
    add_flag(p, "device", default="cpu",
             help="cpu (default: deterministic given --seed), cuda or auto")
    p.add_argument("--detectors", default=None,
                   help="comma-separated detectors (default: all; uebench detect --list)")
    p.add_argument("--references", type=int, default=DEFAULT_REFERENCES,
                   help=f"clean reference subsets the set is read against "
                        f"(default {DEFAULT_REFERENCES})")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: the detectors' models are small, and more "
                        "threads thrash on a shared machine)")
    p.add_argument("--out", default=None,
                   help="write detect.json and scores/<detector>.npy (sample-level scores) here")
    p.add_argument("--list", action="store_true", help="list the detectors and exit")
    p.add_argument("--quiet", action="store_true", help="print only the verdict line")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


@command("detect", help="is this training set an availability poison? simple-network, "
                        "class-template and early-loss detectors against clean references",
         arguments=_detect_arguments)
def cmd_detect(args: argparse.Namespace) -> int:
    if args.list:
        rows = [[name, "yes" if m["needs_reference"] else "no",
                 "yes" if m["sample_scores"] else "no", f"{m['floor']:g}", m["cost"]]
                for name in DETECTORS.names() for m in [DETECTORS.meta(name)]]
        print("\n".join(markdown_lines(["detector", "clean reference", "sample scores",
                                        "floor", "cost"], rows)))
        return 0
    if args.data is None:
        raise UebenchError("give DATA: a dataset name (e.g. `uebench detect fashion-mnist "
                           "--train-size 2000`) or a poison directory; `uebench detect --list` "
                           "lists the detectors")
    names = _detector_names(args.detectors)
    report = detect(
        args.data, poison=args.poison, train_size=args.train_size, data_dir=args.data_dir,
        seed=args.seed, detectors=names, references=args.references, device=args.device,
        out=args.out, threads=args.threads)
    what = f"{report.dataset}, {report.n} images, seed {report.seed}" + (
        f", poison {report.poison} ({report.attack})" if report.poison else ", clean")
    if not args.quiet:
        rows = [[r.name, _fmt(r.value), _fmt(r.reference), _fmt(r.score), _fmt(r.threshold),
                 "FLAGGED" if r.flagged else "-", f"{r.seconds:.1f}"] for r in report.results]
        print(f"detect: {what}")
        print("\n".join(markdown_lines(["detector", "statistic", "clean reference", "score",
                                        "threshold", "verdict", "seconds"], rows)))
        overlap = ", ".join(f"{100 * v:.0f}%" for v in report.reference_overlap)
        print(f"references: {len(report.reference_overlap)} clean subsets of {report.n} images "
              f"(share also in the set: {overlap or '-'}); rule: {report.rule}")
        if args.out:
            print(f"written: {args.out}/detect.json, sample scores in {args.out}/scores/")
    verdict = ("FLAGGED by " + ", ".join(report.flagged_by)) if report.flagged else "not flagged"
    print(f"verdict: {verdict} ({what}; {report.seconds:.1f} s)")
    return 0


def _detector_names(text: str | None) -> list[str] | None:
    return [n.strip() for n in text.split(",") if n.strip()] if text else None


def _study_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("poisons", nargs="+",
                   help="poison directories made for the same images (e.g. a grid's poisons "
                        "and their random-noise controls), each DIR or LABEL=DIR")
    p.add_argument("--sizes", default="500,1000,2000",
                   help="subset sizes the sets are read at (default 500,1000,2000)")
    p.add_argument("--seeds", default="0,1,2", help="subset seeds (default 0,1,2)")
    p.add_argument("--ratio", type=float, default=0.5,
                   help="share of poisoned images in the sample-level sets (default 0.5)")
    p.add_argument("--detectors", default=None, help="comma-separated detectors (default: all)")
    p.add_argument("--references", type=int, default=DEFAULT_REFERENCES,
                   help=f"clean reference subsets (default {DEFAULT_REFERENCES})")
    add_flag(p, "data_dir")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--save", default=None,
                   help="store the result as results/NAME.json (e.g. detect/fashion-mnist)")
    p.add_argument("--results", default=None,
                   help="directory of stored results (default: the repository's results/)")
    p.add_argument("--quiet", action="store_true", help="no per-set progress lines")


@command("detect-study", help="detection and false-positive rates of every detector over "
                              "subset sizes and seeds, and sample-level AUROC (docs/detect.md)",
         arguments=_study_arguments)
def cmd_detect_study(args: argparse.Namespace) -> int:
    names = _detector_names(args.detectors)
    started = time.perf_counter()

    def say(what: str) -> None:
        if not args.quiet:
            print(f"[{time.perf_counter() - started:6.0f} s] {what}", file=sys.stderr, flush=True)

    result = detection_study(
        args.poisons, sizes=int_list(args.sizes, "--sizes") or [],
        seeds=int_list(args.seeds, "--seeds") or [], ratio=args.ratio, references=args.references,
        detectors=names, data_dir=args.data_dir, threads=args.threads, progress=say)
    tables = study_tables(result)
    print(f"detect-study: {result['dataset']}, poisons of {result['n']} images, sizes "
          f"{result['sizes']}, seeds {result['seeds']}")
    for header, rows in tables.values():
        print("\n" + "\n".join(markdown_lines(header, rows)))
    if args.save:
        command_line = " ".join(
            ["uebench detect-study", *args.poisons, "--sizes", args.sizes, "--seeds", args.seeds,
             "--ratio", f"{args.ratio:g}", "--references", str(args.references)]
            + (["--detectors", args.detectors] if args.detectors else []))
        path = save_result(args.save, result, command=command_line, tables=tables,
                           root=Path(args.results) if args.results else None)
        print(f"\nstored: {path}")
    return 0
