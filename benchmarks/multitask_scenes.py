"""Multi-task training on the procedural ``scenes`` (64x64): per-task test metrics per epoch.

Shows that the dataset trains in minutes on a CPU and that every task ends above its best
constant predictor (``uebench.multitask.baselines``). Defaults: ResNet-18 x0.25 backbone with
dense decoders of width 32, 2,000 / 500 scenes, SGD lr 0.05 (momentum 0.9, cosine), batch 64.

    nice -n 10 .venv/bin/python benchmarks/multitask_scenes.py                 # ~minutes, 1 thread
    nice -n 10 .venv/bin/python benchmarks/multitask_scenes.py --backbone lenet --width 2
    .venv/bin/python benchmarks/multitask_scenes.py --quick                    # smoke run
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from uebench.config import TrainCfg
from uebench.multitask import baseline_scores, build_multitask_model, fit_multitask, load_multitask
from uebench.runtime import Runtime
from uebench.utils.stored import command_line, markdown_lines, save_result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--decoder", type=int, default=32)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--n-train", type=int, default=2000)
    ap.add_argument("--n-test", type=int, default=500)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="200/100 scenes, 2 epochs")
    ap.add_argument("--save", default=None, metavar="NAME",
                    help="store the table as results/NAME.json (docs/multitask.md includes it)")
    args = ap.parse_args(argv)
    if args.quick:
        args.n_train, args.n_test, args.epochs = 200, 100, 2
    torch.set_num_threads(args.threads)
    train = load_multitask("scenes", "train", n=args.n_train, image_size=args.image_size)
    test = load_multitask("scenes", "test", n=args.n_test, image_size=args.image_size)
    torch.manual_seed(args.seed)
    mean, std = train.channel_stats()
    model = build_multitask_model(train.tasks, backbone=args.backbone, width=args.width,
                                  image_size=args.image_size, decoder_channels=args.decoder,
                                  mean=mean, std=std)
    cfg = TrainCfg(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, momentum=0.9,
                   weight_decay=5e-4, schedule="cosine", augment="flip", precision="fp32",
                   channels_last="off")
    params = sum(p.numel() for p in model.parameters())
    print(f"{args.backbone} x{args.width}, {params:,} parameters, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, {len(train)}/{len(test)} scenes "
          f"{args.image_size}px", flush=True)
    t0 = time.perf_counter()
    rows = fit_multitask(model, train, cfg=cfg, rt=Runtime(device=args.device, seed=args.seed,
                                                           progress=False), test=test)
    total = time.perf_counter() - t0
    metrics = [k for k in rows[-1] if k.startswith("test/") and not k.endswith("/loss")]
    header = ["epoch", "s", *(k.removeprefix("test/") for k in metrics)]
    table = [[str(r["epoch"]), f"{r['seconds']:.0f}", *(f"{r[k]:.3f}" for k in metrics)]
             for r in rows]
    base = baseline_scores(train, test)
    table.append(["best constant", "", *(f"{base[k.removeprefix('test/')]:.3f}" for k in metrics)])
    print("\n".join(markdown_lines(header, table)))
    print(json.dumps({"total_seconds": round(total, 1)}))
    if args.save:
        command = command_line("benchmarks/multitask_scenes.py", argv)
        path = save_result(args.save, {"total_seconds": round(total, 1), "parameters": params,
                                       "backbone": args.backbone, "width": args.width,
                                       "epochs": args.epochs, "threads": args.threads},
                           command=command, tables={"epochs": (header, table)})
        print(f"stored: {path}")


if __name__ == "__main__":
    main()
