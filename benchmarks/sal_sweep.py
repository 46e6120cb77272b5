"""Sweep of the fast SAL engine's settings against a strong search (``sal_engines.py --sweep``).

Per case (LeNet-5 / Fashion-MNIST, ResNet-18 w0.25 / CIFAR-10) a clean and an OPS-poisoned model
are trained with ``fit`` and snapshotted after several epochs. On a seeded subset of each model's
training data (the SAL set, N images) every snapshot gets ``strong_reference`` on all N images and,
per search setting (K, step schedule η, restarts, probe P), ONE fast search whose best (Δ⁺, Δ⁻) are
scored as the engine would (same seeded split, ``scoring.rescore`` + ``stratified``): on the probe
(``eval_size=None``), held-out (``eval_size=E``), and exactly on all N images ("true"). Reference
per layer = the best full-set value any search found. Printed per setting and scoring: % of layers
within 95 % of it (all, clean, OPS snapshots), % above 105 %, the smallest ratio, mean Spearman ρ,
agreement of SAL > β (β from each method's clean snapshots, Eq. 4), search CPU seconds, and the
cost of one measurement at paper scale (ResNet-18, CIFAR-10 50k) in training epochs (3F/image).
"""

from __future__ import annotations

import copy
import functools
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

import uebench
from uebench.config import TrainCfg
from uebench.learnability import SuffixPlan
from uebench.learnability.fast import fast_sal, step_sizes, strong_reference
from uebench.learnability.sal import cost_model, suffix_macs, training_epoch_macs
from uebench.learnability.scoring import rescore, sal_from_losses, split_probe, stratified
from uebench.learnability.task import SALTask, measuring
from uebench.learnability.threshold import learnable_threshold
from uebench.runtime import Runtime
from uebench.train.classification import fit
from uebench.utils.io import read_json, write_json

SCHEDULES = {  # step sizes in units of the radius r = ε‖θ_l‖
    "A": step_sizes,  # the engine's: 2, 1, 1, ½, ½, ½, ...
    "B": lambda k: tuple(2.0 ** (1 - i) for i in range(k)),  # 2, 1, ½, ¼, ...
}


@dataclass(frozen=True)
class Search:
    steps: int
    schedule: str
    restarts: int
    probe: int

    @property
    def key(self) -> str:
        return f"K={self.steps} {self.schedule} R={self.restarts} P={self.probe}"


@dataclass(frozen=True)
class SweepCase:
    name: str
    dataset: str
    model: str
    width: float
    train_size: int
    sal_size: int
    epochs: int
    measure: tuple[int, ...]
    batch_size: int
    padding: int
    strong_steps: int
    strong_restarts: int
    searches: tuple[Search, ...]
    evals: tuple[int, ...]
    check: tuple[int, int, int] = (0, 0, 0)  # is strong converged? (images, K, restarts)
    # no augmentation: crop/flip would destroy OPS's one-pixel shortcut, and the poisoned model
    # should reach the near-zero training loss that unlearnable examples produce
    augment: str = "none"


def _grid() -> tuple[Search, ...]:
    """LeNet-5: probe scan at K=5 (the old default), step scan at P=1024, then the trade-offs."""
    out = [Search(5, "A", 0, p) for p in (256, 512, 1024, 2048)]
    out += [Search(k, "A", 0, 1024) for k in (1, 2, 3, 8, 12)]
    out += [Search(3, "B", 0, 1024), Search(3, "A", 1, 1024)]
    out += [Search(k, "A", 0, p) for k, p in ((8, 512), (12, 256), (12, 512), (8, 2048),
                                              (1, 4096), (2, 2048), (2, 4096))]
    return tuple(out)


def sweep_cases(quick: bool) -> dict[str, SweepCase]:
    if quick:  # seconds-to-minutes smoke of the whole pipeline
        return {
            "lenet5": SweepCase("LeNet-5 / Fashion-MNIST", "fashion-mnist", "lenet5", 1.0, 1000,
                                600, 2, (1, 2), 128, 2, 8, 0,
                                (Search(3, "B", 0, 128), Search(5, "A", 0, 256)), (128,)),
        }
    return {
        "lenet5": SweepCase("LeNet-5 / Fashion-MNIST", "fashion-mnist", "lenet5", 1.0, 12000,
                            6000, 10, (1, 3, 10), 128, 2, 20, 1, _grid(), (1024, 2048),
                            (1000, 50, 3)),
        # CPU-bound: a 192-image SAL set (probe 96 or 48, 48 of the rest held out)
        "resnet18": SweepCase("ResNet-18 (w 0.25) / CIFAR-10", "cifar10", "resnet18", 0.25, 2048,
                              192, 8, (2, 8), 64, 4, 12, 0,
                              tuple(Search(k, "A", 0, p) for k, p in ((5, 96), (8, 96), (12, 96),
                                                                      (2, 96), (3, 96), (3, 48),
                                                                      (5, 48))), (48,),
                              (32, 24, 0)),
    }


# ----------------------------------------------------------------------------- measuring
def train_snapshots(case: Any, rt: Runtime, poison: str | None = None,
                    augment: str = "crop_flip") -> tuple[torch.nn.Module, torch.Tensor,
                                                          torch.Tensor, list[dict[str, Any]]]:
    """Train ``case.model`` briefly on clean or ``poison``-ed data (``case``: dataset, model,
    width, train_size, epochs, measure, batch_size, padding); the model, the training images
    (uint8, poisoned if asked), labels and one snapshot per epoch in ``case.measure``."""
    train = uebench.load_dataset(case.dataset, train_size=case.train_size, seed=rt.seed).train
    x = train.x
    if poison is not None:
        delta, _ = uebench.run_attack(poison, x, train.y, num_classes=train.num_classes, rt=rt)
        x = ((x.float() / 255 + delta).clamp(0, 1) * 255).round().to(torch.uint8)
    mean, std = train.channel_stats()
    c, h, _ = train.image_shape
    torch.manual_seed(rt.seed)
    model = uebench.get_model(case.model, in_channels=c, image_size=h,
                              num_classes=train.num_classes, width=case.width, mean=mean, std=std)
    cfg = TrainCfg(epochs=case.epochs, batch_size=case.batch_size, lr=0.05, schedule="constant",
                   augment=augment, crop_padding=case.padding, precision="fp32",
                   channels_last="off")
    snaps: list[dict[str, Any]] = []

    def snapshot(ctx: Any) -> None:
        if ctx.epoch in case.measure:
            snaps.append({"epoch": ctx.epoch, "state": copy.deepcopy(ctx.model.state_dict()),
                          "train_loss": ctx.train_loss, "train_acc": ctx.train_acc})

    fit(model, x, train.y, cfg=cfg, rt=rt, callbacks=[snapshot], desc=case.model)
    return model, x, train.y, snaps


def sal_snapshots(case: SweepCase, rt: Runtime, poison: str | None) -> list[dict[str, Any]]:
    """:func:`train_snapshots` with the case's SAL set (a seeded subset of the training data)."""
    model, x, y, snaps = train_snapshots(case, rt, poison, case.augment)
    keep = torch.randperm(len(y), generator=rt.generator(55))[: case.sal_size].sort().values
    for snap in snaps:
        snap.update(model=model, x=x[keep], y=y[keep])
    return snaps


def measure_snapshot(case: SweepCase, snap: dict[str, Any], rt: Runtime,
                     out: dict[str, Any] | None = None) -> dict[str, Any]:
    """Strong + every search of ``case`` on one snapshot; with ``out`` (an earlier record of the
    same deterministic snapshot) only what it lacks is measured."""
    model, x, y = snap["model"], snap["x"], snap["y"]
    model.load_state_dict(snap["state"])
    seed = (7, snap["epoch"])
    if out is None:
        start = time.process_time()
        strong = strong_reference(model, x, y, rt=rt, steps=case.strong_steps,
                                  restarts=case.strong_restarts, seed_offsets=seed)
        out = {"strong": strong.values, "strong_cpu": time.process_time() - start, "fast": {}}
    task = SALTask(model, x, y, rt, seed_offsets=seed)
    for search in (s for s in case.searches if s.key not in out["fast"]):
        start = time.process_time()
        res = fast_sal(task, steps=search.steps, probe_size=search.probe, restarts=search.restarts,
                       etas=SCHEDULES[search.schedule](search.steps), return_deltas=True)
        cpu = time.process_time() - start
        deltas = res.details["deltas"]
        scored = {"probe": res.values, "true": rescore(task, deltas).values}
        for e in case.evals:  # exactly the engine's eval_size=e estimate (stratified)
            probe, held, kind = split_probe(len(y), search.probe, e, task.generator(100))
            if kind == "held_out":
                parts = [rescore(SALTask(model, x[i], y[i], rt, seed_offsets=seed), deltas)
                         for i in (probe, held)]
                losses, clean = stratified([(p.details["losses"], p.details["clean"], w) for p, w
                                            in zip(parts, (len(probe), len(y) - len(probe)))])
                scored[f"held {len(held)}"] = sal_from_losses(losses, clean, "", 0.0).values
        out["fast"][search.key] = {"cpu": cpu, "values": scored}
        print(f"    {search.key:24s} {cpu:7.1f} s", file=sys.stderr, flush=True)
    return out


# ----------------------------------------------------------------------------- summarising
def _matrix(rows: list[dict[str, float]]) -> np.ndarray:
    layers = list(rows[0])
    return np.array([[row[k] for k in layers] for row in rows])


def best_known(record: dict[str, Any]) -> dict[str, float]:
    """Per layer the largest full-set SAL any search found (strong, or a fast perturbation
    rescored on every image): all are feasible points, so this is the best lower bound of the
    maximum available, and the reference the table compares against."""
    runs = [record["strong"]] + [f["values"]["true"] for f in record["fast"].values()]
    return {k: max(run[k] for run in runs) for k in record["strong"]}


def summarise(records: list[dict[str, Any]], search: str, scoring: str) -> dict[str, float]:
    """Agreement of one (search, scoring) with the best known value over one case's snapshots."""
    if search == "strong":
        fast = _matrix([r["strong"] for r in records])
    else:
        fast = _matrix([r["fast"][search]["values"][scoring] for r in records])
    strong = _matrix([best_known(r) for r in records])
    clean = np.array([r["poison"] is None for r in records])
    ind_f = fast > learnable_threshold(fast[clean])
    ind_s = strong > learnable_threshold(strong[clean])
    rho = [spearmanr(a, b).statistic for a, b in zip(fast, strong)]
    hit = fast >= 0.95 * strong
    return {"within95": float(np.mean(hit)), "clean95": float(np.mean(hit[clean])),
            "poison95": float(np.mean(hit[~clean])),
            "over105": float(np.mean(fast > 1.05 * strong)),
            "min_ratio": float(np.min(fast / np.maximum(strong, 1e-12))),
            "rho": float(np.nanmean(rho)), "indicator": float(np.mean(ind_f == ind_s)),
            "cpu": float(np.mean([r["fast"][search]["cpu"] if search != "strong"
                                  else r["strong_cpu"] for r in records]))}


@functools.cache
def paper_macs() -> tuple[int, dict[str, int]]:
    """F and S_l of the paper's CIFAR-10 ResNet-18 (width 1)."""
    with measuring(uebench.get_model("resnet18"), torch.device("cpu")) as m:
        return suffix_macs(SuffixPlan(m), torch.rand(1, 3, 32, 32))


def paper_cost(search: Search, scoring: str) -> float:
    """Fast-engine MACs of one paper-scale measurement in training epochs (3F per image)."""
    forward, suffix = paper_macs()
    eval_size = int(scoring.split()[1]) if scoring.startswith("held") else None
    macs = cost_model(forward, suffix, n_train=50_000, probe_size=search.probe,
                      eval_size=eval_size, steps=search.steps, restarts=search.restarts)["fast"]
    return macs / training_epoch_macs(forward, 50_000)


def print_sweep(results: dict[str, Any]) -> None:
    for block in results.values():
        case, records = block["case"], block["records"]
        snaps = ", ".join(f"{'OPS' if r['poison'] else 'clean'} e{r['epoch']} "
                          f"(loss {r['train_loss']:.3f})" for r in records)
        strong_cpu = np.mean([r["strong_cpu"] for r in records])
        print(f"\n#### {case['name']}: SAL set {case['sal_size']} of {case['train_size']} "
              f"training images; snapshots {snaps}; strong = K={case['strong_steps']}, "
              f"{case['strong_restarts']} restart(s), all {case['sal_size']} images "
              f"({strong_cpu:.0f} CPU s each)\n")
        print("| search (K, η, restarts, probe) | scored on | ≥ 95 % best | clean | OPS "
              "| > 105 % | min ratio | ρ | ind. agree | CPU s | paper epochs |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        rows = [("strong", "all (in-sample)", None)] + [
            (key, scoring, Search(*_parse_key(key))) for key in records[0]["fast"]
            for scoring in records[0]["fast"][key]["values"]]
        for key, scoring, search in rows:
            s = summarise(records, key, scoring)
            cost = "–" if search is None or scoring == "true" else \
                f"{paper_cost(search, scoring):.2f}"
            print(f"| {key} | {scoring} | {s['within95']:.0%} | {s['clean95']:.0%} | "
                  f"{s['poison95']:.0%} | {s['over105']:.0%} | {s['min_ratio']:.2f} | "
                  f"{s['rho']:.3f} | {s['indicator']:.0%} | {s['cpu']:.1f} | {cost} |")
        for c in block.get("strong_check", []):
            print(f"\nStrong search converged? {'OPS' if c['poison'] else 'clean'} e{c['epoch']},"
                  f" first {c['images']} SAL images: strong ≥ 99 % of {c['stronger']} on "
                  f"{c['within99']:.0%} of layers (min ratio {c['min_ratio']:.3f}).")


def _parse_key(key: str) -> tuple[int, str, int, int]:
    k, schedule, r, p = key.split()
    return int(k[2:]), schedule, int(r[2:]), int(p[2:])


def check_strong(case: SweepCase, snap: dict[str, Any], rt: Runtime) -> dict[str, Any]:
    """The sweep's strong search vs a stronger one (``case.check``) on a subset of the SAL set."""
    n, steps, restarts = case.check
    model, x, y = snap["model"], snap["x"][:n], snap["y"][:n]
    model.load_state_dict(snap["state"])
    kw = dict(rt=rt, seed_offsets=(7, snap["epoch"]))
    base = strong_reference(model, x, y, steps=case.strong_steps, restarts=case.strong_restarts,
                            **kw).values
    stronger = strong_reference(model, x, y, steps=steps, restarts=restarts, **kw).values
    ratio = np.array([base[k] / max(stronger[k], 1e-12) for k in base])
    return {"images": n, "stronger": f"K={steps}, {restarts} restart(s)",
            "within99": float(np.mean(ratio >= 0.99)), "min_ratio": float(ratio.min())}


def measure_case(case: SweepCase, rt: Runtime, old: dict[str, Any] | None) -> dict[str, Any]:
    """Every snapshot of the case; resumes ``old`` (the case's block of an earlier JSON):
    existing records keep their values, only missing searches and checks are run."""
    old = old or {"records": [], "strong_check": []}
    known = {(r["poison"], r["epoch"]): r for r in old["records"]}
    records, checks = [], list(old.get("strong_check", []))
    for poison in (None, "ops"):
        snaps = sal_snapshots(case, rt, poison)
        for snap in snaps:
            print(f"  {case.model} {poison or 'clean'} epoch {snap['epoch']}", file=sys.stderr)
            rec = measure_snapshot(case, snap, rt, known.get((poison, snap["epoch"])))
            rec.update(poison=poison, epoch=snap["epoch"], train_loss=snap["train_loss"])
            records.append(rec)
        if case.check[0] and not any(c["poison"] == poison for c in checks):
            checks.append({"poison": poison, "epoch": snaps[-1]["epoch"],
                           **check_strong(case, snaps[-1], rt)})
    return {"case": {k: v for k, v in case.__dict__.items() if k not in ("searches", "evals")},
            "records": records, "strong_check": checks}


def _complete(case: SweepCase, block: dict[str, Any]) -> bool:
    keys = {s.key for s in case.searches}
    return (len(block["records"]) == 2 * len(case.measure)
            and all(keys <= set(r["fast"]) for r in block["records"])
            and len(block.get("strong_check", [])) == (2 if case.check[0] else 0))


def run_sweep(args: Any) -> None:
    """Measure the cases not yet complete in ``--sweep-out`` (resumable), then print tables."""
    rt = Runtime(device=args.device, seed=args.seed, progress=False)
    path = Path(args.sweep_out) if args.sweep_out else None
    results = read_json(path) if path is not None and path.exists() else {}
    for name, case in sweep_cases(args.quick).items():
        if name in args.cases.split(",") and not _complete(case, results.get(name, {
                "records": []})):
            results[name] = measure_case(case, rt, results.get(name))
            if path is not None:
                write_json(path, results)
    print_sweep(results)
