"""Training-time cost of each defense: ``fit()`` img/s with the defense vs undefended.

Per-step defenses (batch transforms, UEraser, adversarial training) run inside ``fit`` through
``DefensePipeline.batch_loss``; each round trains every defense once, interleaved with the
undefended run, on the same CIFAR-10-shaped data (3 x 32 x 32; the CIFAR-10 subset when present,
else random images), and the best round counts, so background load hits all alike. Dataset
transforms cost nothing per step (their output is cached): their one-time ``prepare`` rate is
reported separately.

    .venv/bin/python benchmarks/defenses.py               # LeNet-5 + ResNet-18 x0.25 (~10 min)
    .venv/bin/python benchmarks/defenses.py --quick       # smoke run
    .venv/bin/python benchmarks/defenses.py --device cuda --n 8192
"""

from __future__ import annotations

import argparse
import time

import torch

from uebench import Runtime, get_model, load_dataset
from uebench.config import TrainCfg
from uebench.defenses import DEFENSES, DefensePipeline, defense_info
from uebench.errors import UebenchError
from uebench.train import fit
from uebench.utils.stored import add_save_option, report_and_store

STEP_DEFENSES = ("cutout", "mixup", "cutmix", "ueraser-lite", "ueraser-max",
                 "ueraser-max:jpeg=true", "at", "at-l2")
MODELS = (("lenet5", 1.0), ("resnet18", 0.25))


def cifar_shaped(n: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    try:
        s = load_dataset("cifar10", train_size=n)
        return s.train.x, s.train.y, "CIFAR-10 subset"
    except UebenchError:
        gen = torch.Generator().manual_seed(0)
        x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen)
        return x, torch.arange(n) % 10, "random 3x32x32 images"


class Hook:
    """fit's ``batch_loss`` for a pipeline; uses fit's ``BatchInfo`` when fit passes one."""

    def __init__(self, pipe: DefensePipeline) -> None:
        self.pipe, self.gen = pipe, torch.Generator().manual_seed(0)

    def __call__(self, model, x, y, info=None):
        epoch, gen = (info.epoch, info.generator()) if info is not None else (1, self.gen)
        return self.pipe.batch_loss(model, x, y, epoch=epoch, gen=gen)[:2]


def train_rate(spec: str, model_name: str, width: float, x, y, batch: int, device) -> float:
    """img/s of one fit() epoch (training only, no evaluation) with the defense ``spec``."""
    torch.manual_seed(0)
    model = get_model(model_name, in_channels=3, image_size=(32, 32), width=width)
    cfg = TrainCfg(epochs=1, batch_size=batch, lr=0.05, schedule="constant", augment="crop_flip")
    hook = Hook(DefensePipeline.from_spec(spec)) if spec != "none" else None
    rows = fit(model, x, y, cfg=cfg, rt=Runtime(device, 0, False), batch_loss=hook)
    return len(x) / rows[0]["train_seconds"]


def step_table(x, y, batch: int, repeats: int, device, models) -> list[dict]:
    out = []
    for model_name, width in models:
        n = len(x) if model_name == "lenet5" else max(batch * 2, len(x) // 4)
        xs, ys = x[:n], y[:n]
        train_rate("none", model_name, width, xs[:batch], ys[:batch], batch, device)  # warm-up
        best: dict[str, float] = {}
        for _ in range(repeats):
            for spec in ("none", *STEP_DEFENSES):
                rate = train_rate(spec, model_name, width, xs, ys, batch, device)
                best[spec] = max(best.get(spec, 0.0), rate)
        for spec in ("none", *STEP_DEFENSES):
            out.append({"model": f"{model_name} x{width:g}", "n": n, "defense": spec,
                        "img_s": best[spec], "ratio": best[spec] / best["none"]})
    return out


def prepare_table(x, y, repeats: int) -> list[dict]:
    out = []
    for name in DEFENSES.names():
        if defense_info(name).kind != "dataset":
            continue
        pipe = DefensePipeline.from_spec(name)
        secs = min(_timed(pipe, x, y) for _ in range(repeats))
        out.append({"defense": pipe.describe(), "img_s": len(x) / secs})
    return out


def _timed(pipe: DefensePipeline, x, y) -> float:
    t0 = time.perf_counter()
    pipe.prepare(x, y, seed=0)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--n", type=int, default=2048, help="training images for LeNet-5")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    add_save_option(ap)
    args = ap.parse_args()
    report_and_store(args.save, "benchmarks/defenses.py", lambda: report(args))


def report(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    n = 512 if args.quick else args.n
    x, y, source = cifar_shaped(max(n, 10_000))
    models = MODELS[:1] if args.quick else MODELS
    repeats = 1 if args.quick else args.repeats
    rows = step_table(x[:n], y[:n], args.batch, repeats, torch.device(args.device), models)
    print(f"Per-step defenses: fit() train img/s, 1 epoch, bs {args.batch}, crop+flip, "
          f"{source}, best of {repeats}, interleaved\n")
    print("| model | images | defense | train img/s | vs none |")
    print("|---|---:|---|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['n']} | {r['defense']} | {r['img_s']:.0f} "
              f"| {r['ratio']:.2f} |")
    prep = prepare_table(x[:2000 if args.quick else 10_000], y, repeats)
    print(f"\nDataset transforms: one-time prepare() on {source} (3 x 32 x 32)\n")
    print("| defense | prepare img/s |")
    print("|---|---:|")
    for r in prep:
        print(f"| {r['defense']} | {r['img_s']:.0f} |")
    print(f"\ntorch {torch.__version__}, threads {torch.get_num_threads()}, device {args.device}")


if __name__ == "__main__":
    main()
