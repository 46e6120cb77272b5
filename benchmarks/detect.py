"""``uebench detect``: what a dataset-level verdict costs, and the clean spread the floors rest on.

Timing (default): the full verdict (every detector on the set and on its clean references, as
``uebench detect`` runs it) on N images, clean and for each ``--poison`` directory, with the wall
time per detector and in total, the torch threads and the machine's load average (a busy machine
is slower; the numbers say how busy it was).

Calibration (``--calibrate K``): every detector's statistic on K clean subsets of N images of the
dataset (the default subset and K - 1 disjoint others, all read with the same detector seed, as a
verdict reads them): their standard deviation, the largest gap between two of them, and the
detector's ``floor`` in standard deviations of the gap between a clean candidate and the mean of
the default two references (std x sqrt(1 + 1/2)). docs/detect.md, "The threshold", says how the
floors were chosen from it.

    .venv/bin/python benchmarks/detect.py --dataset fashion-mnist --n 2000
    .venv/bin/python benchmarks/detect.py --dataset fashion-mnist --n 2000 --poison runs/.../p1
    .venv/bin/python benchmarks/detect.py --dataset cifar10 --n 2000 --calibrate 5
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import platform
import time

import torch

from uebench.data import load_dataset
from uebench.data.base import stratified_subset
from uebench.detect import DETECTORS, detect, reference_indices
from uebench.detect.base import run_detector
from uebench.utils.stored import add_save_option, report_and_store


def timing(args: argparse.Namespace) -> None:
    for poison in [None, *args.poison]:
        t0 = time.perf_counter()
        report = detect(args.dataset, poison=poison, train_size=args.n, seed=args.seed,
                        data_dir=args.data_dir, threads=args.threads)
        total = time.perf_counter() - t0
        label = "clean" if poison is None else f"{report.attack} ({poison})"
        print(f"\n{args.dataset}, {report.n} images, {label}: "
              f"{'FLAGGED by ' + ', '.join(report.flagged_by) if report.flagged else 'not flagged'}"
              f"; {total:.1f} s in all (loading included)")
        print("| detector | statistic | clean reference | score | threshold | flagged | seconds |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for r in report.results:
            print(f"| {r.name} | {r.value:.4f} | {r.reference:.4f} | {r.score:+.4f} | "
                  f"{r.threshold:.4f} | {'yes' if r.flagged else 'no'} | {r.seconds:.1f} |")


def calibrate(args: argparse.Namespace) -> None:
    from uebench.detect.api import DEFAULT_REFERENCES, detector_runtime

    full = load_dataset(args.dataset, data_dir=args.data_dir).train
    taken = stratified_subset(full.y, args.n, args.seed) if args.n < len(full) \
        else torch.arange(len(full))
    subsets = [taken, *reference_indices(full.y, taken, seed=args.seed, count=args.calibrate - 1)]
    rt = detector_runtime(args.seed, "cpu")
    shared = max(len(set(a.tolist()) & set(b.tolist()))
                 for a, b in itertools.combinations(subsets, 2))
    print(f"{args.dataset}: {len(subsets)} clean subsets of {args.n} images (two share at most "
          f"{shared} images), one detector seed")
    print("| detector | values on the clean subsets | std | largest gap | floor | "
          "floor / gap std |")
    print("|---|---|---:|---:|---:|---:|")
    for name in DETECTORS.names():
        values = torch.tensor([run_detector(name, full.subset(s), rt=rt).value for s in subsets],
                              dtype=torch.float64)
        std = float(values.std())  # over clean subsets; the gap to a mean of R references
        gap_std = std * math.sqrt(1 + 1 / DEFAULT_REFERENCES)  # has this standard deviation
        floor = DETECTORS.meta(name)["floor"]
        shown = ", ".join(f"{v:.4f}" for v in values.tolist())
        print(f"| {name} | {shown} | {std:.4f} | {float(values.max() - values.min()):.4f} | "
              f"{floor:g} | {floor / max(gap_std, 1e-12):.1f} |")

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--poison", nargs="*", default=[], help="poison directories to time too")
    parser.add_argument("--calibrate", type=int, default=0, metavar="K",
                        help="statistics on K clean subsets instead of timing")
    add_save_option(parser)
    args = parser.parse_args()
    if args.calibrate == 1 or args.calibrate < 0:
        parser.error("--calibrate needs K >= 2 subsets")
    report_and_store(args.save, "benchmarks/detect.py", lambda: report(args))


def report(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"{os.cpu_count()} CPUs, load average {load[0]}, {platform.processor() or 'cpu'}")
    if args.calibrate:
        calibrate(args)
    else:
        timing(args)


if __name__ == "__main__":
    main()
