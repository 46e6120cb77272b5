"""GPU readiness in one script: the numbers a CUDA machine must give before paper-scale runs.

On one device, in about 8 minutes on a current data-centre GPU (one JSON, ``--out``):

1. training img/s of ResNet-18 on CIFAR-10-shaped data: ``fit()`` vs a plain loop, in fp32, in
   bf16 autocast + channels_last, and with ``torch.compile`` (bf16 + channels_last);
2. seconds per SAL measurement with the fast engine (its defaults) and the compat engine (the
   paper's protocol: 10 rounds of SGD passes; timed over ``--compat-rounds`` rounds on
   ``--sal-images`` images and scaled to 10 rounds of CIFAR-10's 50k images, drop_last);
3. compat vs the plain per-layer reference loop at ResNet-18 (same batch stream, fp32): the
   largest per-layer SAL difference;
4. EM generation seconds per round (ResNet-18 surrogate, ``--em-images`` images).

    .venv/bin/python benchmarks/gpu_check.py --device cuda --out gpu_check.json
    .venv/bin/python benchmarks/gpu_check.py --device cpu --tiny --skip-compile   # CI smoke

``--tiny`` shrinks everything (width 1/16, a few hundred images) so the whole script runs on a
CPU in seconds; the test suite runs it that way. Data are random uint8 images with random labels
(throughput does not depend on content; SAL parity is checked on a briefly trained model).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from uebench import Runtime, get_model
from uebench.config import TrainCfg
from uebench.data.loader import DeviceLoader
from uebench.learnability.sal import run_sal
from uebench.learnability.task import SALData
from uebench.train import fit
from uebench.train.loop import autocast

CIFAR_TRAIN = 50_000


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float]:
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t0


def fake_cifar(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8),
            torch.randint(0, 10, (n,), generator=g))


def model_for(width: float, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    return get_model("resnet18", width=width).to(device)


def plain_loop(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: TrainCfg,
               device: torch.device, precision: str, channels_last: bool) -> int:
    """The loop a researcher would write: SGD, device-resident batches, crop/flip."""
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay)
    loader = DeviceLoader(x, y, batch_size=cfg.batch_size, shuffle=True, augment=cfg.augment,
                          device=device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    n = 0
    for _ in range(cfg.epochs):
        for xb, yb in loader.batches(torch.Generator().manual_seed(1)):
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with autocast(device, precision):
                loss = F.cross_entropy(model(xb).float(), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += int(yb.shape[0])
    return n


def training(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    x, y = fake_cifar(args.train_images)
    modes = [("fp32", "fp32", "off", False), ("bf16_channels_last", "bf16", "on", False)]
    if not args.skip_compile:
        modes.append(("compile_bf16_channels_last", "bf16", "on", True))
    out: dict[str, Any] = {"images_per_epoch": args.train_images, "batch_size": args.batch}
    for name, precision, cl, compiled in modes:
        cfg = TrainCfg(epochs=args.epochs, batch_size=args.batch, precision=precision,
                       channels_last=cl, lr=0.05)
        warm = TrainCfg(epochs=1, batch_size=args.batch, precision=precision, channels_last=cl)
        model = model_for(args.width, device)
        if compiled:
            model = torch.compile(model)
        fit(model, x[: args.batch * 4], y[: args.batch * 4], cfg=warm,
            rt=Runtime(device, 0, False))  # warm-up: kernels, autotuning, compilation
        _, t_fit = timed(lambda m=model, c=cfg: fit(m, x, y, cfg=c, rt=Runtime(device, 0, False)),
                         device)
        plain_model = model_for(args.width, device)
        if compiled:
            plain_model = torch.compile(plain_model)
        plain_loop(plain_model, x[: args.batch * 4], y[: args.batch * 4], warm, device,
                   precision, cl == "on")
        n, t_plain = timed(lambda m=plain_model, c=cfg, p=precision, on=cl == "on":
                           plain_loop(m, x, y, c, device, p, on), device)
        fit_rate, plain_rate = args.epochs * len(x) / t_fit, n / t_plain
        out[name] = {"fit_img_s": fit_rate, "plain_img_s": plain_rate,
                     "fit_over_plain": fit_rate / plain_rate}
    return out


def sal_numbers(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    x, y = fake_cifar(args.sal_images, seed=1)
    model = model_for(args.width, device)
    fit(model, x, y, cfg=TrainCfg(epochs=1, batch_size=args.batch, lr=0.05),
        rt=Runtime(device, 0, False))  # a trained model: gradients are not all alike
    rt = Runtime(device, 0, False)
    data = SALData(batch_size=args.batch, augment="crop_flip", drop_last=True)
    fast, t_fast = timed(lambda: run_sal(model, x, y, rt=rt, data=data, engine="fast",
                                         precision=args.sal_precision), device)
    _, t_compat = timed(lambda: run_sal(model, x, y, rt=rt, data=data, engine="compat",
                                        rounds=args.compat_rounds, precision=args.sal_precision),
                        device)
    batches = args.sal_images // args.batch
    per_round_image = t_compat / (args.compat_rounds * batches * args.batch)
    full = 10 * (CIFAR_TRAIN // 256) * 256 * per_round_image
    return {"layers": len(fast.values), "fast_seconds": t_fast, "fast_details": {
                k: fast.details.get(k) for k in ("probe_size", "eval_size", "steps")},
            "compat_seconds_measured": t_compat, "compat_rounds": args.compat_rounds,
            "compat_images": batches * args.batch,
            "compat_seconds_per_measurement_cifar10_est": full,
            "precision": args.sal_precision}


def parity(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    x, y = fake_cifar(args.parity_images, seed=2)
    model = model_for(args.width, device)
    fit(model, x, y, cfg=TrainCfg(epochs=1, batch_size=args.parity_batch, lr=0.05),
        rt=Runtime(device, 0, False))
    rt = Runtime(device, 3, False)
    data = SALData(batch_size=args.parity_batch, augment="crop_flip", drop_last=True)
    common = dict(rt=rt, data=data, origin="exact", rounds=1)
    compat, t_c = timed(lambda: run_sal(model, x, y, engine="compat", **common), device)
    ref, t_r = timed(lambda: run_sal(model, x, y, engine="reference", **common), device)
    diffs = {k: abs(compat.values[k] - ref.values[k]) for k in ref.values}
    return {"max_abs_diff": max(diffs.values()), "layers": len(diffs),
            "max_value": max(ref.values.values()), "compat_seconds": t_c,
            "reference_seconds": t_r, "reference_over_compat": t_r / t_c}


def em_round(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    from uebench.attacks import run_attack

    x, y = fake_cifar(args.em_images, seed=4)
    params = {"surrogate": "resnet18", "surrogate_width": args.width, "max_rounds": 1,
              "stop_acc": 1.0}
    _, seconds = timed(lambda: run_attack("em", x, y, num_classes=10,
                                          rt=Runtime(device, 0, False), params=params), device)
    return {"images": args.em_images, "seconds_per_round": seconds}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", default="gpu_check.json")
    p.add_argument("--tiny", action="store_true", help="seconds on a CPU (the test suite)")
    p.add_argument("--skip-compile", action="store_true")
    args = p.parse_args(argv)
    sizes = ({"width": 1 / 16, "train_images": 256, "epochs": 1, "batch": 32, "sal_images": 128,
              "compat_rounds": 1, "parity_images": 64, "parity_batch": 16, "em_images": 64}
             if args.tiny else
             {"width": 1.0, "train_images": 10_240, "epochs": 2, "batch": 256,
              "sal_images": 5_120, "compat_rounds": 2, "parity_images": 512, "parity_batch": 128,
              "em_images": 2_048})
    for k, v in sizes.items():
        setattr(args, k, v)
    args.sal_precision = "bf16" if args.device.startswith("cuda") else "fp32"
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    t0 = time.perf_counter()
    result: dict[str, Any] = {
        "device": str(device), "torch": torch.__version__, "python": platform.python_version(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "tiny": args.tiny, "sizes": sizes,
    }
    for name, part in (("training", training), ("sal", sal_numbers), ("parity", parity),
                       ("em", em_round)):
        result[name] = part(args, device)
        print(name, json.dumps(result[name]), flush=True)
    result["total_seconds"] = time.perf_counter() - t0
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
