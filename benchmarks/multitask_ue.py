"""Unlearnable examples on the procedural scenes: cross-task matrix (paper Fig. 8) and per-task
SAL / UD of a jointly trained multi-task model (Figs. 4, 6), at CPU scale.

Steps (each resumable; re-running reuses finished poisons and runs):

1. poisons for the 2,000 training scenes at 32 px: multi-task EM for each task and for the sum
   of all four losses (EM's original steps: 20 x 0.8/255, 10 surrogate batches of 128 per round,
   EM's stop at 99 % accuracy for the classification objective, at most 10 rounds; LeNet-scale
   x2 surrogate), plus OPS and random noise on the scene labels;
2. the cross-task matrix: a single-head LeNet x2 model per target task, clean and on every
   poison (10 epochs, the scenes recipe), training seeds 0, 1, 2 on the same images and poisons
   -> OUT/cross/results.md (mean ± std of every difference), figures/cross_task.png;
3. a four-head model (ResNet-10 x0.25 backbone) on clean, EM(scene), EM(all), OPS and random
   data with per-task fast SAL every epoch (probe 128, 128 held out, 2 steps)
   -> OUT/eval/results.md, figures/task_*.png.

    nice -n 10 .venv/bin/python benchmarks/multitask_ue.py --out runs/multitask-ue   # ~1.5 h
    .venv/bin/python benchmarks/multitask_ue.py --quick --out /tmp/mtue              # smoke

With ``--save NAME`` (both steps run) the printed tables are stored as ``results/NAME.json``
(values, command, commit, machine) for docs/findings.md §9 to include: ``cross`` (the matrix),
``ud`` (per-task #LP and UD), ``metrics`` (the four-head model's test metrics) and
``similarity`` (mean task-SAL cosine per run).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import torch

from uebench.multitask.config import resolve_multitask_cfg
from uebench.multitask.cross import cross_task_matrix, generate_poisons
from uebench.multitask.evaluate import evaluate_poisons
from uebench.utils.stored import parse_markdown_tables, save_result

EM = {"steps": 20, "step_size": 0.8 / 255, "train_steps": 10, "batch_size": 128,
      "max_rounds": 10, "surrogate": "lenet", "surrogate_width": 2.0, "decoder_channels": 32}
SPECS = ["em:scene", "em:segment", "em:depth", "em:keypoints", "em:all", "ops", "random"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/multitask-ue")
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seeds", default="0,1,2", help="training seeds of the cross-task matrix")
    ap.add_argument("--skip-eval", action="store_true", help="only poisons + cross-task matrix")
    ap.add_argument("--skip-cross", action="store_true",
                    help="only poisons + the per-task evaluation (run beside a --skip-eval "
                         "process once the poisons exist: the two steps share nothing else)")
    ap.add_argument("--quick", action="store_true", help="96 scenes at 16 px, 2 epochs")
    ap.add_argument("--save", metavar="NAME",
                    help="store the tables as results/NAME.json (needs both steps)")
    args = ap.parse_args()
    if args.save and (args.skip_eval or args.skip_cross):
        ap.error("--save stores both steps' tables: drop --skip-eval / --skip-cross")
    torch.set_num_threads(1)
    out = Path(args.out)
    data = [f"data.options.image_size={args.image_size}", "data.subset_seed=0"]
    seeds = [int(v) for v in args.seeds.split(",")]
    em = dict(EM)
    if args.quick:
        data += ["data.options.n=96", "data.test_size=48"]
        args.epochs, seeds = 2, seeds[:2]
        data[0] = "data.options.image_size=16"
        em.update(steps=2, max_rounds=2, train_steps=2, batch_size=32, decoder_channels=8)
    lenet = resolve_multitask_cfg(overrides=[*data, "model.width=2", "model.decoder_channels=32"],
                                  epochs=args.epochs, seed=seeds[0])
    t0 = time.perf_counter()
    poisons = generate_poisons(lenet, SPECS, out / "poisons", params=em)
    print(f"poisons: {time.perf_counter() - t0:.0f}s", flush=True)
    if not args.skip_cross:
        table = cross_task_matrix(lenet, poisons, out=out / "cross", seeds=seeds, progress=False)
        print((out / "cross" / "results.md").read_text(), table.get("files"), flush=True)
        print(f"cross-task: {time.perf_counter() - t0:.0f}s", flush=True)
    if args.skip_eval:
        return
    resnet = resolve_multitask_cfg(
        overrides=[*data, "model.width=0.25", "model.decoder_channels=16",
                   "sal.options={probe_size: 128, eval_size: 128, steps: 2}"],
        model="resnet10", epochs=args.epochs, seed=seeds[0])
    chosen = [p for p in poisons if p.name in ("em-scene", "em-all", "ops", "random")]
    result = evaluate_poisons(resnet, chosen, out=out / "eval", progress=False)
    print((out / "eval" / "results.md").read_text(), result.get("files"), flush=True)
    print(f"total: {time.perf_counter() - t0:.0f}s", flush=True)
    if args.save:
        print(f"stored: {save_tables(args.save, out, seeds)}")


def save_tables(name: str, out: Path, seeds: list[int], root: Path | None = None) -> Path:
    """Store the cross-task matrix and the four-head model's tables as printed."""
    (cross,) = parse_markdown_tables((out / "cross" / "results.md").read_text())
    report = (out / "eval" / "results.md").read_text()
    ud, metrics = parse_markdown_tables(report)
    # the similarity lines ("- run: a~b 0.89, ...") as a table: run x task pair
    lines = [ln[2:] for ln in report.splitlines() if ln.startswith("- ") and "~" in ln]
    pairs = [p.split()[0] for p in lines[0].split(": ", 1)[1].split(", ")] if lines else []
    sim = [[ln.split(": ", 1)[0], *(p.split()[1] for p in ln.split(": ", 1)[1].split(", "))]
           for ln in lines]
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    return save_result(name, {"seeds": seeds}, command=command,
                       tables={"cross": cross, "ud": ud, "metrics": metrics,
                               "similarity": (["run", *pairs], sim)}, root=root)


if __name__ == "__main__":
    main()
