"""Training throughput of ``fit()`` vs a minimal hand-written PyTorch loop, side by side.

Same model, data, batch size, augmentation and precision; the two are interleaved (A, B, A, B)
and the best of the repeats is reported, so background load hits both alike. Also compares
fp32/NCHW with channels_last + bf16 autocast on this CPU (speed and accuracy after a short run).

    .venv/bin/python benchmarks/train_throughput.py            # full table (~5 min on 2 cores)
    .venv/bin/python benchmarks/train_throughput.py --quick    # smoke run
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch
import torch.nn.functional as F

from uebench import Runtime, get_model, load_dataset
from uebench.config import TrainCfg
from uebench.data.loader import DeviceLoader
from uebench.train import evaluate, fit
from uebench.utils.stored import add_save_option, report_and_store


def plain_loop(model, x, y, cfg: TrainCfg, seed: int, precision: str, channels_last: bool) -> float:
    """The minimal loop a researcher would write: SGD, device-resident batches, crop/flip."""
    opt = torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )
    loader = DeviceLoader(x, y, batch_size=cfg.batch_size, shuffle=True, augment=cfg.augment)
    gen = torch.Generator().manual_seed(seed)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    t0 = time.perf_counter()
    n = 0
    for _ in range(cfg.epochs):
        for xb, yb in loader.batches(gen):
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss = F.cross_entropy(model(xb).float(), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += yb.shape[0]
    return n / (time.perf_counter() - t0)


def fit_rate(model, x, y, cfg: TrainCfg, seed: int) -> float:
    t0 = time.perf_counter()
    rows = fit(model, x, y, cfg=cfg, rt=Runtime("cpu", seed, False))
    return len(rows) * x.shape[0] / (time.perf_counter() - t0)


def case(name, dataset, model_name, width, n, epochs, batch, precision, repeats, channels_last):
    s = load_dataset(dataset, train_size=n, test_size=2000)
    c, h, w = s.train.image_shape
    mean, std = s.train.channel_stats()
    cfg = TrainCfg(
        epochs=epochs,
        batch_size=batch,
        lr=0.05,
        schedule="constant",
        augment="crop_flip",
        precision=precision,
        channels_last="on" if channels_last else "off",
    )

    def build():
        torch.manual_seed(0)
        return get_model(
            model_name, in_channels=c, image_size=(h, w), width=width, mean=mean, std=std
        )

    # warm-up (allocator, kernels) so neither side pays first-call costs
    warm = dataclasses.replace(cfg, epochs=1)
    plain_loop(build(), s.train.x[:256], s.train.y[:256], warm, 0, precision, channels_last)
    fits, plains = [], []
    for r in range(repeats):
        plains.append(plain_loop(build(), s.train.x, s.train.y, cfg, r, precision, channels_last))
        fits.append(fit_rate(build(), s.train.x, s.train.y, cfg, r))
    return {
        "case": name,
        "precision": f"{precision}{' +CL' if channels_last else ''}",
        "plain": max(plains),
        "fit": max(fits),
        "ratio": max(fits) / max(plains),
    }


def precision_study(dataset, model_name, width, n, epochs, batch):
    """Accuracy and speed of fp32 vs channels_last+bf16 after the same short training."""
    s = load_dataset(dataset, train_size=n, test_size=2000)
    c, h, w = s.train.image_shape
    mean, std = s.train.channel_stats()
    out = []
    for precision, cl in (("fp32", "off"), ("bf16", "on")):
        torch.manual_seed(0)
        m = get_model(model_name, in_channels=c, image_size=(h, w), width=width, mean=mean, std=std)
        cfg = TrainCfg(
            epochs=epochs,
            batch_size=batch,
            lr=0.05,
            schedule="cosine",
            augment="crop_flip",
            precision=precision,
            channels_last=cl,
        )
        t0 = time.perf_counter()
        fit(m, s.train.x, s.train.y, cfg=cfg, rt=Runtime("cpu", 0, False))
        secs = time.perf_counter() - t0
        acc = evaluate(m, s.test.x, s.test.y)["acc"]
        out.append(
            {
                "model": f"{model_name} x{width}",
                "setting": f"{precision}/{cl}",
                "img_s": epochs * n / secs,
                "test_acc": acc,
            }
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=2)
    add_save_option(ap)
    args = ap.parse_args()
    report_and_store(args.save, "benchmarks/train_throughput.py", lambda: report(args))


def report(args: argparse.Namespace) -> None:
    q = args.quick
    rows = [
        case("lenet5 / fashion-mnist", "fashion-mnist", "lenet5", 1.0, 2000 if q else 10000,
             1 if q else 2, 128, "fp32", args.repeats, False),
        case("resnet18 x0.5 / cifar10", "cifar10", "resnet18", 0.5, 256 if q else 1024, 1, 128,
             "fp32", args.repeats, False),
        # bf16 + channels_last: many times slower than fp32 on CPUs without bf16 instructions,
        # faster on CPUs with AMX-BF16 (the stored machine record says which one ran)
        case("resnet18 x0.5 / cifar10", "cifar10", "resnet18", 0.5, 256 if q else 1024, 1, 128,
             "bf16", args.repeats, True),
    ]
    print("| case | precision | plain loop img/s | fit() img/s | fit / plain |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['case']} | {r['precision']} | {r['plain']:.0f} | {r['fit']:.0f} "
            f"| {r['ratio']:.2f} |"
        )
    study = precision_study("cifar10", "resnet18", 0.25, 500 if q else 1000, 1, 128)
    study += precision_study(
        "fashion-mnist", "lenet5", 1.0, 2000 if q else 10000, 1 if q else 2, 128
    )
    print("\n| model | precision / channels_last | train img/s | test acc |")
    print("|---|---|---:|---:|")
    for r in study:
        print(f"| {r['model']} | {r['setting']} | {r['img_s']:.0f} | {r['test_acc']:.4f} |")
    print(f"\ntorch {torch.__version__}, threads {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
