"""progress.json of a grid: who writes it, whether the run ended, and an ETA computed from the
jobs' estimates (hand arithmetic below), the run's own finished jobs and the workers."""

from __future__ import annotations

import json
import os

from uebench.bench.graph import Job
from uebench.bench.progress import GridProgress


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _read(path):
    return json.loads(path.read_text())


def test_eta_is_the_work_left_over_the_workers(tmp_path):
    jobs = [Job("train", "a", {}, label="a"), Job("train", "b", {}, label="b"),
            Job("poison", "c", {}, label="c"), Job("poison", "d", {}, label="d")]
    clock, path = Clock(), tmp_path / "progress.json"
    p = GridProgress(jobs, path=path, enabled=False, parallel=2, clock=clock,
                     estimates={"a": 100.0, "b": 50.0, "c": None, "d": None})
    got = _read(path)
    # the two poisons have no estimate yet: left out of the sum and counted
    assert got["eta_seconds"] == (100 + 50) / 2 and got["eta_unknown_jobs"] == 2
    assert got["ended"] is False and got["pid"] == os.getpid() and got["updated"]
    p.started("a")
    clock.now += 10
    p.started("b")
    assert _read(path)["eta_seconds"] == (90 + 50) / 2  # a running job's time counts against it
    clock.now += 20
    p.finished("b", "built", seconds=30.0)
    assert _read(path)["eta_seconds"] == (100 - 30) / 2
    p.started("c")
    clock.now += 100
    p.finished("a", "built", seconds=130.0)
    # only the two poisons are open and neither has an estimate
    assert _read(path)["eta_seconds"] is None and _read(path)["eta_unknown_jobs"] == 2
    clock.now += 30
    p.finished("c", "built", seconds=130.0)
    # d has no estimate of its own: this run's finished poison stands in for it
    got = _read(path)
    assert got["eta_seconds"] == 130 / 2 and got["eta_unknown_jobs"] == 0
    p.close()
    assert _read(path)["ended"] is True


def test_a_stopped_grid_marks_its_running_jobs_interrupted(tmp_path):
    path = tmp_path / "progress.json"
    p = GridProgress([Job("train", "a", {}, label="a"), Job("train", "b", {}, label="b")],
                     path=path, enabled=False, estimates={"a": 10.0, "b": 20.0})
    p.started("a")
    p.close()  # a signal or an error stopped the run while a was training
    got = _read(path)
    assert got["ended"] is True and got["counts"] == {"interrupted": 1, "pending": 1}
    assert got["eta_seconds"] == 30.0  # what is left if the command is run again


def test_eta_is_unknown_only_while_no_open_job_has_an_estimate(tmp_path):
    p = GridProgress([Job("train", "a", {}, label="a")], enabled=False)
    assert p.eta() == (None, 1)
    p.finished("a", "failed", error="x")
    assert p.eta() == (0.0, 0)


def test_each_finished_job_line_says_how_long_is_left(capsys):
    clock = Clock()
    p = GridProgress([Job("train", "a", {}, label="train a"), Job("train", "b", {}, label="b")],
                     estimates={"a": 100.0, "b": 50.0}, clock=clock)
    p.started("a")
    clock.now += 100
    p.finished("a", "built", seconds=100.0)
    assert "[1/2] built   train a 100.0s · about 50.0s left" in capsys.readouterr().err
    p.finished("b", "built", seconds=40.0)
    last = capsys.readouterr().err
    assert "[2/2] built   b 40.0s" in last and "left" not in last
    p.close()


def test_estimates_prefer_runs_of_the_same_size():
    # SAL's per-epoch cost does not grow with the data, so a 2,000-image run costs more per
    # image than a 20,000-image one: a job takes the seconds per epoch of runs of its own size,
    # else a line a x images + b through the other sizes (here b = 10 s of SAL, a = 2 ms)
    from uebench.bench.cost import estimate, train_signature

    def job(n, ratio=1.0, mix="replace"):
        cfg = {"data": {"name": "cifar10", "train_size": n}, "defense": "none",
               "model": {"name": "resnet18", "width": 0.125},
               "sal": {"enabled": True, "engine": "fast", "options": {}},
               "train": {"batch_size": 64, "precision": "auto", "epochs": 10},
               "poison_ratio": ratio, "poison_mix": mix}
        return Job("train", f"k{n}{mix}", {"cfg": cfg, "poison": "p"}, label=str(n))

    def per_epoch(n):
        return 10.0 + 2e-3 * n

    small, large = job(2000), job(20000)
    sig = train_signature(small.spec["cfg"], "signature")
    rates = {("train", "sized", "cpu", *train_signature(small.spec["cfg"])):
             [(2000, per_epoch(2000))],
             ("train", "sized", "cpu", *train_signature(large.spec["cfg"])):
             [(20000, per_epoch(20000))],
             ("train", "signature", "cpu", *sig): [(2000, per_epoch(2000)),
                                                   (20000, per_epoch(20000))]}
    assert estimate(small, rates, ("cpu",)) == (10 * per_epoch(2000), "measured (cpu)")
    # a size not measured: the line through the measured sizes
    got, how = estimate(job(5000), rates, ("cpu",))
    assert abs(got - 10 * per_epoch(5000)) < 1e-9 and how == "measured, other sizes (cpu)"
    # the clean part of a 2,000-image set at share 0.8 trains on 400 images
    got, _ = estimate(job(2000, 0.8, "drop"), rates, ("cpu",))
    assert abs(got - 10 * per_epoch(400)) < 1e-9
    # one size measured: proportional to the images
    one = {("train", "signature", "cpu", *sig): [(2000, per_epoch(2000))]}
    got, _ = estimate(job(4000), one, ("cpu",))
    assert abs(got - 10 * per_epoch(2000) * 2) < 1e-9
