"""Tests of the attacks without a surrogate (random, ops, lsp, ar): the attack contract over the
registry, each method's defining property, and (slow) their effect on Fashion-MNIST / LeNet-5.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from uebench.attacks import ATTACKS, attack_info, measure, run_attack
from uebench.attacks import ar as ar_mod
from uebench.attacks.lsp import lsp_radius, patch_grid
from uebench.attacks.ops import corner_colours, ops_scores, ops_search
from uebench.data import DATASETS, load_dataset
from uebench.errors import UebenchError
from uebench.runtime import Runtime, derive_seed

SIMPLE = [n for n in ATTACKS.names() if not attack_info(n).surrogate]
DETERMINISTIC = {"ops"}  # no randomness: different seeds give the same poison


def rt(seed: int = 0) -> Runtime:
    return Runtime("cpu", seed, progress=False)


@pytest.fixture(scope="module")
def synthetic() -> tuple[torch.Tensor, torch.Tensor]:
    train = load_dataset("synthetic", train_size=128, seed=0).train
    return train.x, train.y


def grey_images(n: int, shape: tuple[int, int, int], num_classes: int, seed: int = 0):
    """Mid-range images (no clipping for small deltas) with balanced labels."""
    g = torch.Generator().manual_seed(seed)
    x = 0.3 + 0.4 * torch.rand((n, *shape), generator=g)
    y = torch.arange(n) % num_classes
    return x, y


# ----------------------------------------------------------------------------- contract


@pytest.mark.parametrize("name", SIMPLE)
def test_attack_contract(name: str, synthetic) -> None:
    x, y = synthetic
    info = attack_info(name)
    small = dict(info.test_params)
    delta, params = run_attack(name, x, y, num_classes=10, rt=rt(0), params=small)
    norm = info.norm_for(params)
    xf = x.float() / 255
    assert delta.shape == x.shape and delta.dtype == torch.float32
    assert torch.isfinite(delta).all()
    assert (xf + delta).min() >= 0 and (xf + delta).max() <= 1
    assert delta.abs().sum() > 0
    measured = measure(delta)
    eps = params.get(info.eps_param) if info.eps_param else None
    if norm is not None and eps is not None:
        assert measured[f"{norm}_max"] <= eps + 1e-6
    again, _ = run_attack(name, x, y, num_classes=10, rt=rt(0), params=small)
    assert torch.equal(delta, again), "not deterministic given the seed"
    other, _ = run_attack(name, x, y, num_classes=10, rt=rt(1), params=small)
    assert torch.equal(delta, other) == (name in DETERMINISTIC)


# ----------------------------------------------------------------------------- random


def test_random_uniform_and_classwise() -> None:
    x, y = grey_images(200, (3, 8, 8), 10)
    eps = 8 / 255
    d, _ = run_attack("random", x, y, num_classes=10, rt=rt(3))
    assert d.abs().max() <= eps and d.abs().max() > 0.95 * eps
    assert abs(float(d.mean())) < 2e-3  # centred
    dc, _ = run_attack("random", x, y, num_classes=10, rt=rt(3), params={"classwise": True})
    for k in range(10):
        same = dc[y == k]
        assert torch.allclose(same, same[:1].expand_as(same), atol=1e-6), "differs within a class"
    assert not torch.equal(dc[y == 0][0], dc[y == 1][0])


# ----------------------------------------------------------------------------- ops


def brute_force_scores(x: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """The original's per-(position, colour) score, written out literally (tiny inputs only)."""
    n, c, h, w = x.shape
    colours = corner_colours(c).numpy()
    out = np.zeros((k, len(colours), h * w))
    for cls in range(k):
        imgs = x[y == cls]
        for p in range(h * w):
            pix = imgs[:, :, p // w, p % w]  # n_k x C
            for m, col in enumerate(colours):
                v = np.abs(col[None, :] - pix)
                out[cls, m, p] = v.mean() / (v.std() + 1e-8)
    return out


def test_ops_scores_match_the_original_formula() -> None:
    x, y = grey_images(60, (3, 4, 5), 3, seed=1)
    fast = ops_scores(x, y, 3).numpy()
    slow = brute_force_scores(x.double().numpy(), y.numpy(), 3)
    np.testing.assert_allclose(fast, slow, rtol=1e-6, atol=1e-8)


def test_ops_one_pixel_one_colour_per_class(synthetic) -> None:
    x, y = synthetic
    xf = x.float() / 255
    d, _ = run_attack("ops", x, y, num_classes=10, rt=rt())
    assert measure(d)["l0_max"] == 1.0
    poisoned = (xf + d).flatten(2)
    pairs = set()
    for k in range(10):
        changed = (d[y == k].abs().amax(dim=1) > 0).flatten(1)  # n_k x P
        positions = torch.nonzero(changed.any(0)).flatten()
        assert positions.numel() == 1, f"class {k} changes {positions.numel()} positions"
        p = int(positions[0])
        colours = poisoned[y == k][:, :, p]
        assert torch.equal(colours, colours[:1].expand_as(colours))
        assert set(colours.flatten().tolist()) <= {0.0, 1.0}
        pairs.add((p, tuple(colours[0].tolist())))
    assert len(pairs) == 10


@pytest.mark.parametrize("channels", [1, 3])
def test_ops_many_classes(channels: int) -> None:
    x, y = grey_images(300, (channels, 8, 8), 100, seed=2)
    positions, colours = ops_search(x, y, 100)
    pairs = set(zip(positions.tolist(), colours.tolist()))
    assert len(pairs) == 100 and colours.max() < 2**channels
    d, _ = run_attack("ops", x, y, num_classes=100, rt=rt())
    assert measure(d)["l0_max"] == 1.0


def test_ops_too_many_classes() -> None:
    x, y = grey_images(40, (1, 2, 2), 10)
    with pytest.raises(UebenchError, match="distinct"):
        ops_search(x, y, 10)


# ----------------------------------------------------------------------------- lsp


def test_lsp_norm_grid_and_separability() -> None:
    x, y = grey_images(200, (3, 16, 16), 10)
    eps = 0.5
    d, _ = run_attack("lsp", x, y, num_classes=10, rt=rt(), params={"eps": eps, "patch_size": 8})
    norms = d.flatten(1).norm(dim=1)
    torch.testing.assert_close(norms, torch.full_like(norms, eps), atol=1e-5, rtol=0)
    blocks = d.unfold(2, 8, 8).unfold(3, 8, 8)  # N x C x 2 x 2 x 8 x 8: constant blocks
    assert torch.allclose(blocks, blocks[..., :1, :1].expand_as(blocks), atol=1e-7)
    # class-clustered: nearest class mean of the patterns recovers every label
    flat = d.flatten(1)
    means = torch.stack([flat[y == k].mean(0) for k in range(10)])
    assert (torch.cdist(flat, means).argmin(1) == y).all()


def test_lsp_helpers() -> None:
    assert patch_grid(32, 8) == (4, 8)
    assert patch_grid(28, 8) == (4, 7)
    assert patch_grid(224, 32) == (7, 32)
    assert lsp_radius((3, 32, 32)) == pytest.approx(1.304, abs=1e-3)
    assert lsp_radius((1, 28, 28)) == pytest.approx(0.6588, abs=1e-3)


# ----------------------------------------------------------------------------- ar


def test_ar_sweep_matches_raster_loop() -> None:
    g = torch.Generator().manual_seed(0)
    coefs = ar_mod.random_coefficients(3, 2, g)
    x = torch.randn((3, 2, 7, 9), generator=g, dtype=torch.float64)
    ref = x.clone()
    for n in range(3):
        for c in range(2):
            b = coefs[n, c]
            for i in range(2, 7):
                for j in range(2, 9):
                    window = ref[n, c, i - 2:i + 1, j - 2:j + 1]
                    ref[n, c, i, j] = (window * b).sum() - window[2, 2] * b[2, 2]
    torch.testing.assert_close(ar_mod.ar_sweep(x, coefs), ref)
    assert torch.allclose(coefs.sum(dim=(2, 3)), torch.ones(3, 2, dtype=torch.float64))
    assert (coefs[:, :, 2, 2] == 0).all()


def test_ar_perfect_model_and_search_criterion() -> None:
    seed = derive_seed(0, 7003, 1)  # the seed ar() uses for rt.seed 0: the search is memoised
    coefs = ar_mod.search_coefficients(10, 3, seed, min_response=ar_mod.default_min_response(10, 3))
    labels = torch.arange(60) % 10
    cpu = torch.device("cpu")
    patterns = ar_mod.ar_patterns(coefs, labels, (3, 16, 16), rt(), crop=4, device=cpu)
    resp = ar_mod.responses(ar_mod.filters_of(coefs), patterns)  # K x N
    assert resp[labels, torch.arange(60)].abs().max() < 1e-5  # own filter: zero (float32 conv)
    assert (resp.argmin(0) == labels).all()  # the AR paper's "perfect model"
    # the search criterion: each process's pattern excites every earlier process's filter
    ref = ar_mod.ar_patterns(coefs, torch.arange(10), (3, 32, 32), rt(5), crop=4, device=cpu)
    r = ar_mod.responses(ar_mod.filters_of(coefs), ref)
    earlier = torch.tril(torch.ones(10, 10, dtype=torch.bool), diagonal=-1).T
    threshold = ar_mod.default_min_response(10, 3)  # fresh patterns: min 6.7, median 13.2
    assert r[earlier].min() > 0.3 * threshold and r[earlier].median() > threshold


@pytest.mark.parametrize("shape,classes", [((3, 16, 16), 10), ((1, 12, 12), 100)])
def test_ar_no_nan_no_black(shape, classes: int) -> None:
    x, y = grey_images(3 * classes, shape, classes)
    d, params = run_attack("ar", x, y, num_classes=classes, rt=rt())
    assert torch.isfinite(d).all()
    norms = d.flatten(1).norm(dim=1)
    torch.testing.assert_close(norms, torch.full_like(norms, params["eps"]), atol=2e-2, rtol=0)
    assert ((x + d).flatten(1).amax(1) > 0.05).all()  # no black images


def test_ar_default_threshold_and_failure() -> None:
    assert ar_mod.default_min_response(10, 3) == pytest.approx(10.0)
    assert ar_mod.default_min_response(100, 3) == pytest.approx(3.0)
    assert ar_mod.default_min_response(10, 1) == pytest.approx(10 / 3**0.5)
    with pytest.raises(UebenchError, match="max_tries"):
        ar_mod.search_coefficients(10, 3, 1, min_response=1e6, max_tries=512)


# ----------------------------------------------------------------------------- effect (slow)


FASHION_TRAIN, FASHION_TEST = 2000, 1000


def _train_lenet(x, y, test, *, optimizer: str, lr: float, epochs: int, mean, std) -> dict:
    from uebench import get_model
    from uebench.config import TrainCfg
    from uebench.train import fit

    cfg = TrainCfg(epochs=epochs, batch_size=32, optimizer=optimizer, lr=lr, schedule="cosine",
                   augment="none", weight_decay=0.0)
    torch.manual_seed(0)  # the initial weights
    model = get_model("lenet5", in_channels=1, image_size=28, mean=mean, std=std)
    rows = fit(model, x, y, cfg=cfg, rt=rt(0), x_test=test[0], y_test=test[1])
    return rows[-1]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_effect_on_fashion_mnist() -> None:
    """What the poisons do to LeNet-5 on 2,000 Fashion-MNIST images (1,000 test images).

    Measured test accuracy (CPU, seed 0, bs 32, cosine, no augmentation; docs/attacks.md):

        training              clean  random  ops   lsp (0.659)  ar (1.0)
        Adam 2e-3, 8 epochs   0.813  0.794   0.801  0.811       0.798
        Adam 2e-3, 20 epochs  0.831  0.829   0.756  0.805       0.822
        SGD 0.05, 8 epochs    0.801  0.800   0.550  0.798       0.798   <- this test

    LeNet-5 learns Fashion-MNIST's natural features before these shortcuts: LSP and AR at their
    original budgets do not lower the accuracy (CIFAR-10, Adam: clean 0.409, ops 0.222, lsp 0.283,
    ar 0.430), so "well below clean" is asserted for OPS only (SGD). For OPS, LSP and AR the test
    checks instead that the perturbation alone is a learnable class shortcut: LeNet trained on the
    deltas of half the images predicts the other half's labels from their deltas (measured 1.0,
    0.999, 0.988), unlike sample-wise random noise (0.588: clipping leaks the silhouette).
    Random 8/255 noise stays harmless (0.800 vs 0.801).
    """
    if "fashion-mnist" not in DATASETS:
        pytest.skip("fashion-mnist is not registered")
    from uebench.errors import DataNotFoundError

    try:
        splits = load_dataset("fashion-mnist", train_size=FASHION_TRAIN, test_size=FASHION_TEST)
    except DataNotFoundError as err:
        pytest.skip(f"fashion-mnist files not present: {str(err).splitlines()[0]}")
    train, test = splits.train, (splits.test.x, splits.test.y)
    mean, std = train.channel_stats()
    deltas = {}
    for name in ("random", "ops", "lsp", "ar"):
        params = {"eps": lsp_radius(train.image_shape)} if name == "lsp" else {}
        deltas[name], _ = run_attack(name, train.x, train.y, num_classes=10, rt=rt(0),
                                     params=params)
    poisoned = {k: (train.float() + d).mul(255).round().clamp(0, 255).to(torch.uint8)
                for k, d in deltas.items()}
    acc = {}
    for key, x in (("clean", train.x), ("random", poisoned["random"]), ("ops", poisoned["ops"])):
        acc[key] = _train_lenet(x, train.y, test, optimizer="sgd", lr=0.05, epochs=8, mean=mean,
                                std=std)["test_acc"]
    half_a, half_b = torch.arange(0, FASHION_TRAIN, 2), torch.arange(1, FASHION_TRAIN, 2)
    for name, d in deltas.items():  # delta-only learnability, amplified to [0, 1]
        shown = (0.5 + d / (2 * d.abs().max())).clamp(0, 1)
        acc[f"{name}_delta"] = _train_lenet(
            shown[half_a], train.y[half_a], (shown[half_b], train.y[half_b]), optimizer="adam",
            lr=2e-3, epochs=5, mean=(0.5,), std=(0.25,),
        )["test_acc"]
    print({k: round(v, 3) for k, v in acc.items()})
    assert acc["clean"] > 0.7
    assert acc["random"] > acc["clean"] - 0.05
    assert acc["ops"] < acc["clean"] - 0.15
    for name in ("ops", "lsp", "ar"):
        assert acc[f"{name}_delta"] > 0.9, name
    assert acc["random_delta"] < 0.8
