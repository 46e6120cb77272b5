"""Surrogate-based attacks (EM, REM, TAP, HYPO, DC): contract, determinism, resume, behaviour.

CPU only, on 64 ``synthetic`` images (3 x 16 x 16) with the ``tiny`` surrogate and a few steps;
the Fashion-MNIST effectiveness check is marked ``slow``.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import uebench
from uebench.attacks import ATTACKS, attack_info, measure, resolve_params, run_attack
from uebench.attacks.surrogate import build_surrogate, train_clean_surrogate
from uebench.errors import ConfigError
from uebench.runtime import Runtime
from uebench.train import evaluate
from uebench.utils.io import safe_torch_load

from .conftest import has_dataset

NORM_KEY = {"linf": "linf_max", "l2": "l2_max"}
TINY = {"surrogate": "tiny"}
# every registered surrogate attack and preset, at the small settings it declares at registration
# (``test_params``): a new attack or preset is covered without editing this file
CASES = {
    (name if preset == "original" else f"{name}-{preset}"): (
        name, preset, dict(attack_info(name).test_params))
    for name in ATTACKS.names() if attack_info(name).surrogate
    for preset in attack_info(name).presets
}


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    train = uebench.load_dataset("synthetic", train_size=64).train
    return train.float(), train.y


def rt(seed: int = 0) -> Runtime:
    return Runtime(device="cpu", seed=seed, progress=False)


def craft(case: str, data, workdir=None, seed: int = 0, **changes) -> torch.Tensor:
    """The registered function itself (no run_attack projection), so its own budget is tested."""
    name, preset, overrides = CASES[case]
    params = resolve_params(name, preset, {**overrides, **changes})
    x, y = data
    return ATTACKS.get(name)(x, y, num_classes=10, rt=rt(seed), workdir=workdir, **params)


def test_registry() -> None:
    for name in ("em", "rem", "tap", "hypo", "dc"):
        assert attack_info(name).surrogate
    assert "ntga" not in ATTACKS  # its JAX stack is gone: import the released poisons instead
    assert set(attack_info("em").presets) == {"original", "apbench", "classwise"}
    assert set(attack_info("dc").presets) == {"original", "cpu"}


def test_hypo_norm_follows_preset() -> None:
    info = attack_info("hypo")
    assert info.norm_for(resolve_params("hypo")) == "l2"
    assert info.norm_for(resolve_params("hypo", "apbench")) == "linf"
    with pytest.raises(ConfigError):
        resolve_params("hypo", overrides={"norm": "l1"})


@pytest.mark.parametrize("case", sorted(CASES))
def test_contract(case: str, data) -> None:
    x, _ = data
    name, preset, overrides = CASES[case]
    params = resolve_params(name, preset, overrides)
    delta = craft(case, data)
    assert delta.shape == x.shape and delta.dtype == torch.float32
    assert torch.isfinite(delta).all()
    poisoned = x + delta
    assert poisoned.min() >= 0.0 and poisoned.max() <= 1.0
    info = attack_info(name)
    eps = params[info.eps_param]
    assert measure(delta)[NORM_KEY[info.norm_for(params)]] <= eps + 1e-6
    assert delta.abs().amax() > 0  # it did something
    assert torch.equal(delta, craft(case, data))  # deterministic given the seed
    assert not torch.equal(delta, craft(case, data, seed=1))


def test_run_attack_enforces_declared_budget(data) -> None:
    x, y = data
    name, preset, overrides = CASES["hypo-apbench"]
    delta, params = run_attack(name, x, y, num_classes=10, rt=rt(), preset=preset,
                               params=overrides)
    assert params["norm"] == "linf"
    assert measure(delta)["linf_max"] <= 8 / 255 + 1e-6


def test_em_resume_and_crash_recovery(data, tmp_path) -> None:
    straight = craft("em", data, max_rounds=2)
    craft("em", data, workdir=tmp_path, max_rounds=1)
    round1 = (tmp_path / "em" / "state.pt").read_bytes()
    assert torch.equal(craft("em", data, workdir=tmp_path, max_rounds=2), straight)
    # crash after round 2's surrogate training but before its state was saved
    (tmp_path / "em" / "state.pt").write_bytes(round1)
    assert torch.equal(craft("em", data, workdir=tmp_path, max_rounds=2), straight)
    with pytest.raises(ConfigError):  # another setting must not reuse this workdir
        craft("em", data, workdir=tmp_path, eps=4 / 255)


def test_em_min_min_lowers_surrogate_loss(data, tmp_path) -> None:
    x, y = data
    delta = craft("em", data, workdir=tmp_path, train_steps=10, steps=10, max_rounds=5)
    model = build_surrogate("tiny", x, 10, width=1.0, rt=rt(), stream=(8100, 0))
    model.load_state_dict(safe_torch_load(tmp_path / "em" / "surrogate" / "checkpoint.pt")["model"])
    clean = evaluate(model, x, y)["loss"]
    noisy = evaluate(model, x + delta, y)["loss"]
    assert noisy < 0.5 * clean  # measured: 0.012 vs 0.079
    # what a reader needs to judge the poison: rounds run and whether stop_acc was reached
    diag = json.loads((tmp_path / "diagnostics.json").read_text())
    assert 1 <= diag["rounds"] <= 5
    assert diag["converged"] == (diag["surrogate_acc_on_poison"] > diag["stop_acc"])
    assert diag["converged"] or diag["rounds"] == 5


def test_rem_resume(data, tmp_path) -> None:
    straight = craft("rem", data, train_steps=4)  # 64 images / batch 32 = 2 steps per epoch
    craft("rem", data, workdir=tmp_path, train_steps=2)
    assert torch.equal(craft("rem", data, workdir=tmp_path, train_steps=4), straight)


def test_dc_resume(data, tmp_path) -> None:
    straight = craft("dc", data, outer_epochs=2)
    craft("dc", data, workdir=tmp_path, outer_epochs=1)
    assert torch.equal(craft("dc", data, workdir=tmp_path, outer_epochs=2), straight)


def test_tap_resume(data, tmp_path) -> None:
    straight = craft("tap", data, restarts=2)
    craft("tap", data, workdir=tmp_path, restarts=1)
    assert torch.equal(craft("tap", data, workdir=tmp_path, restarts=2), straight)
    # an interrupted restart: one finished batch is kept, the other recomputed
    best = safe_torch_load(tmp_path / "tap" / "best.pt")
    (tmp_path / "tap" / "best.pt").unlink()
    for path in (tmp_path / "tap").glob("restart*/batch000001.pt"):
        path.unlink()
    assert best["restart"] in (0, 1)
    assert torch.equal(craft("tap", data, workdir=tmp_path, restarts=2), straight)


def test_hypo_resume(data, tmp_path) -> None:
    straight = craft("hypo", data)
    craft("hypo", data, workdir=tmp_path)
    (tmp_path / "hypo" / "batches" / "batch000001.pt").unlink()
    shutil.rmtree(tmp_path / "hypo" / "surrogate")  # retrained identically
    assert torch.equal(craft("hypo", data, workdir=tmp_path), straight)


def test_tap_targeted_moves_predictions_to_next_class(data, tmp_path) -> None:
    # the tiny surrogate is hard to steer at 8/255 on these smooth 16 x 16 patterns (measured:
    # 5 % -> 12 % predicted y + 1), so the check uses 32/255 (measured: 5 % -> 67 %)
    x, y = data
    changes = {"surrogate_epochs": 60, "eps": 32 / 255, "steps": 20, "tau": 0.1, "restarts": 1,
               "augment": False}
    delta = craft("tap", data, workdir=tmp_path, **changes)
    model = train_clean_surrogate(x, y, num_classes=10, rt=rt(), name="tiny", width=1.0,
                                  epochs=60, run_dir=tmp_path / "tap" / "surrogate")  # reloaded
    target = (y + 1) % 10
    with torch.no_grad():
        before = (model(x).argmax(1) == target).float().mean()
        after = (model(x + delta).argmax(1) == target).float().mean()
    assert after > before + 0.3


def test_ntga_import_released(tmp_path) -> None:
    import numpy as np

    from uebench.attacks.ntga import import_released
    from uebench.poisons import load_delta

    clean = uebench.load_dataset("synthetic", train_size=16).train
    noise = torch.randint(-8, 9, clean.x.shape, generator=torch.Generator().manual_seed(0))
    poisoned = (clean.x.int() + noise).clamp(0, 255).to(torch.uint8)
    np.save(tmp_path / "ntga.npy", poisoned.permute(0, 2, 3, 1).numpy())  # released layout NHWC
    manifest = import_released(tmp_path / "ntga.npy", clean, dataset="synthetic",
                               out_dir=tmp_path / "poison")
    assert manifest["attack"] == "ntga"
    delta, _, _ = load_delta(tmp_path / "poison")
    assert torch.equal(delta.int(), poisoned.int() - clean.x.int())


@pytest.mark.slow
@pytest.mark.skipif(not has_dataset("fashion-mnist"), reason="Fashion-MNIST files not installed")
def test_em_makes_fashion_mnist_unlearnable() -> None:
    """LeNet-5 EM on 2,000 Fashion-MNIST images, then LeNet-5 trained on the poison.

    Measured (seed 0, 1,000 test images, 5 epochs): clean 78.3 % test accuracy; EM at the paper's
    8/255 only 75-78 % (LeNet learns Fashion-MNIST's clean features first; class-wise random
    noise at 8/255 does nothing either), so the check uses 32/255, where EM gives 59.4 % (train
    accuracy on the poison 97 %: the noise is the shortcut) and uniform random noise of the same
    size 76.6 %.
    """
    from uebench.config import TrainCfg
    from uebench.models import get_model
    from uebench.train import fit

    splits = uebench.load_dataset("fashion-mnist", train_size=2000, test_size=1000)
    x, y = splits.train.float(), splits.train.y
    delta, _ = run_attack("em", x, y, num_classes=10, rt=rt(), params={
        "surrogate": "lenet5", "eps": 32 / 255, "steps": 5, "step_size": 6.4 / 255,
        "batch_size": 256, "max_rounds": 4})
    cfg = TrainCfg(epochs=5, batch_size=32, optimizer="adam", lr=2e-3, schedule="cosine",
                   augment="none", weight_decay=0.0)
    results = {}
    for name, images in (("clean", x), ("em", (x + delta).clamp(0, 1))):
        torch.manual_seed(1)
        model = get_model("lenet5", in_channels=1, image_size=28, num_classes=10)
        rows = fit(model, images, y, cfg=cfg, rt=rt(1), x_test=splits.test.float(),
                   y_test=splits.test.y)
        results[name] = rows[-1]
    assert results["em"]["test_acc"] < results["clean"]["test_acc"] - 0.10
    assert results["em"]["train_acc"] > results["clean"]["train_acc"] + 0.10


def test_generated_em_manifest_records_convergence(tmp_path) -> None:
    from uebench.attacks import generate_poison
    from uebench.attacks.base import attack_info

    params = {**attack_info("em").test_params, "max_rounds": 3}
    m = generate_poison("em", dataset="synthetic", out=tmp_path / "em", train_size=64, seed=0,
                        params=params, progress=False)
    diag = m["diagnostics"]
    assert diag["rounds"] <= 3 and diag["stop_acc"] == params["stop_acc"]
    assert json.loads((tmp_path / "em" / "manifest.json").read_text())["diagnostics"] == diag
    assert not (tmp_path / "em" / ".work").exists()
