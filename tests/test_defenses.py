"""Defenses: registry contract, pipeline validation, equality with reference codecs, and
behavioural invariants measured at CPU scale (AT robustness, grayscale vs a colour shortcut,
JPEG vs an linf 8/255 perturbation). CPU only, tiny models, seconds each.
"""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

import uebench
from uebench.config import TrainCfg
from uebench.defenses import (
    DEFENSES,
    ORIGINS,
    BatchDefense,
    DatasetDefense,
    DefensePipeline,
    LossDefense,
    Mixed,
    defense_info,
    get_defense,
)
from uebench.defenses.jpeg import jpeg_stacked
from uebench.errors import ConfigError, UebenchError, UnknownNameError
from uebench.runtime import Runtime

NAMES = DEFENSES.names()
KIND_BASE = {"dataset": DatasetDefense, "batch": (BatchDefense, LossDefense),
             "procedure": LossDefense}


@pytest.fixture(scope="module")
def synthetic() -> tuple[torch.Tensor, torch.Tensor]:
    train = uebench.load_dataset("synthetic", train_size=64).train
    return train.x, train.y


def images(channels: int, n: int = 16, side: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, channels, side, side), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(seed))


def tiny(channels: int = 3, side: int = 16, seed: int = 0, width: float = 1.0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return uebench.get_model("tiny", in_channels=channels, image_size=(side, side),
                             num_classes=10, width=width)


def step(pipe: DefensePipeline, model, x, y, *, seed: int = 0, epoch: int = 1):
    return pipe.batch_loss(model, x, y, epoch=epoch, gen=torch.Generator().manual_seed(seed))


class FitHook:
    """fit's ``batch_loss`` hook for a pipeline. A fit that passes a ``BatchInfo`` gives the
    epoch and a per-batch seeded stream; with the older ``(model, x, y)`` call the epoch comes
    from a callback and the draws from one generator."""

    def __init__(self, pipe: DefensePipeline, seed: int) -> None:
        self.pipe, self.gen, self.epoch = pipe, torch.Generator().manual_seed(seed), 1

    def __call__(self, model, x, y, info=None):
        epoch, gen = (info.epoch, info.generator()) if info is not None else (self.epoch, self.gen)
        return self.pipe.batch_loss(model, x, y, epoch=epoch, gen=gen)[:2]

    def next_epoch(self, ctx) -> None:
        self.epoch = ctx.epoch + 1


def train(spec: str, x, y, *, channels: int, side: int, epochs: int, seed: int = 0):
    """A tiny model trained with the defense through ``uebench.fit``."""
    model = tiny(channels, side, seed, width=2)
    pipe = DefensePipeline.from_spec(spec)
    hook = FitHook(pipe, seed)
    cfg = TrainCfg(epochs=epochs, batch_size=64, lr=0.05, schedule="constant", augment="none")
    uebench.fit(model, pipe.prepare(x, y, seed=seed), y, cfg=cfg, rt=Runtime("cpu", seed, False),
                batch_loss=hook, callbacks=[hook.next_epoch])
    return model.eval()


def accuracy(model, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        xf = x.float() / 255 if x.dtype == torch.uint8 else x
        return float((model(xf).argmax(1) == y).float().mean())


# ----------------------------------------------------------------------------- registry contract


def test_registry_metadata() -> None:
    assert {"jpeg", "grayscale", "bdr", "blur", "cutout", "mixup", "cutmix", "ueraser",
            "ueraser-lite", "ueraser-max", "at", "at-l2"} <= set(NAMES)
    for name in NAMES:
        info = defense_info(name)
        assert isinstance(get_defense(name), KIND_BASE[info.kind])
        assert info.official_origin in ORIGINS and info.paper and info.description
        assert dict(info.defaults) == get_defense(name).params()
    assert defense_info("at").defaults == {"eps": 8 / 255, "step_size": 2 / 255, "steps": 10}
    assert defense_info("at-l2").defaults["eps"] == 0.5  # its own radius, not linf's 8/255
    assert defense_info("jpeg").defaults == {"quality": 10}
    assert [defense_info(f"ueraser{v}").defaults["repeat_epoch"]
            for v in ("-lite", "", "-max")] == [0, 50, None]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("channels", [1, 3])
def test_contract(name: str, channels: int) -> None:
    pipe = DefensePipeline.from_spec(name)
    x, y = images(channels), torch.arange(16) % 10
    prepared = pipe.prepare(x, y, seed=0)
    assert prepared.shape == x.shape and prepared.dtype == torch.uint8
    assert torch.equal(prepared, pipe.prepare(x, y, seed=0))
    xf = prepared.float() / 255
    model = tiny(channels)
    before = copy.deepcopy(model)
    loss, logits, origin = step(pipe, model, xf, y)
    assert loss.dim() == 0 and torch.isfinite(loss) and loss.requires_grad
    assert logits.shape == (16, 10)
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    assert (origin is None) == (pipe.official_origin == "eval")
    if origin is not None:
        assert torch.isfinite(origin)
    again, _, _ = step(pipe, before, xf, y)  # same model state and seed: same loss
    assert torch.equal(again.detach(), loss.detach())


@pytest.mark.parametrize("name", NAMES)
def test_step_under_bf16_autocast(name: str, synthetic) -> None:
    """fit() calls batch_loss inside autocast (bf16 on CUDA): every defense must run there."""
    x, y = synthetic[0][:16].float() / 255, synthetic[1][:16]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, logits, _ = step(DefensePipeline.from_spec(name), tiny(), x, y)
    loss.backward()
    assert torch.isfinite(loss) and logits.shape == (16, 10)


@pytest.mark.parametrize("name", [n for n in NAMES if defense_info(n).kind == "batch"
                                  and issubclass(DEFENSES.get(n), BatchDefense)])
def test_batch_transform_contract(name: str, synthetic) -> None:
    x, y = synthetic[0].float() / 255, synthetic[1]
    defense = get_defense(name)
    out, targets = defense.apply(x, y, gen=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.min() >= 0 and out.max() <= 1
    same, _ = defense.apply(x, y, gen=torch.Generator().manual_seed(0))
    other, _ = defense.apply(x, y, gen=torch.Generator().manual_seed(1))
    assert torch.equal(out, same) and not torch.equal(out, other)
    if defense.mixes:
        assert isinstance(targets, Mixed)
        assert torch.allclose(targets.probs(10).sum(1), torch.ones(len(y)))
        assert (targets.lam >= 0).all() and (targets.lam <= 1).all()
    else:
        assert targets is y


@pytest.mark.parametrize("name", ["mixup", "cutmix", "ueraser-max"])
def test_kornia_draws_leave_global_rng_alone(name: str, synthetic) -> None:
    x, y = synthetic[0].float() / 255, synthetic[1]
    state = torch.get_rng_state()
    step(DefensePipeline.from_spec(name), tiny(), x, y)
    assert torch.equal(torch.get_rng_state(), state)


# ----------------------------------------------------------------------------- pipeline


def test_spec_roundtrip_and_describe() -> None:
    pipe = DefensePipeline.from_spec("jpeg,cutout")
    assert pipe.describe() == "jpeg(q=10)+cutout(16)"
    assert pipe.spec() == "jpeg,cutout" and pipe.official_origin == "running"
    custom = DefensePipeline.from_spec("grayscale, bdr:bits=3, ueraser-max:jpeg=true")
    assert custom.spec() == "grayscale,bdr:bits=3,ueraser-max:jpeg=true"
    assert custom.official_origin == "running_max"
    assert custom.dataset_spec() == "grayscale,bdr:bits=3"
    at = DefensePipeline.from_spec("at:eps=4/255:steps=5")
    assert at.defenses[0].eps == pytest.approx(4 / 255) and at.describe() == "at(linf 4/255,5x)"
    assert at.official_origin == "running_adversarial"
    for pipe in (custom, at, DefensePipeline.from_spec("ueraser:repeat_epoch=none")):
        assert DefensePipeline.from_spec(pipe.spec()).to_config() == pipe.to_config()
        assert DefensePipeline.from_spec(pipe.to_config()).to_config() == pipe.to_config()
    as_list = DefensePipeline.from_spec(["cutout:size=8", {"name": "at", "eps": "4/255"}])
    assert as_list.defenses[0].size == 8 and as_list.defenses[1].eps == pytest.approx(4 / 255)
    assert DefensePipeline.from_spec("mixup").official_origin == "eval"
    for empty in ("", "none", None, []):
        pipe = DefensePipeline.from_spec(empty)
        assert len(pipe) == 0 and pipe.describe() == "none" and pipe.spec() == "none"


@pytest.mark.parametrize("spec, error", [
    ("jpg", UnknownNameError),
    ("jpeg:qualty=3", ConfigError),
    ("jpeg:quality=abc", ConfigError),
    ("jpeg:quality=0", ConfigError),
    ("at:steps=2.5", ConfigError),
    ("at:eps=-1", ConfigError),
    ("at:eps=nan", ConfigError),
    ("blur:kernel=2", ConfigError),
    ("cutout:size", ConfigError),
    (":size=3", ConfigError),
    ("jpeg,jpeg", ConfigError),
    ("cutout,jpeg", ConfigError),
    ("ueraser,cutout", ConfigError),
    ("at,ueraser-max", ConfigError),
    ("at,at-l2", ConfigError),
    ("mixup,cutmix", ConfigError),
    ("mixup,at", ConfigError),
    ("cutmix,ueraser", ConfigError),
    ([{"eps": 0.1}], ConfigError),
    (3, ConfigError),
])
def test_bad_specs_raise(spec, error) -> None:
    with pytest.raises(error):
        DefensePipeline.from_spec(spec)


def test_bad_inputs_raise() -> None:
    pipe = DefensePipeline.from_spec("jpeg,cutout")
    with pytest.raises(UebenchError):
        pipe.prepare(images(3).float(), torch.zeros(16), seed=0)
    with pytest.raises(UebenchError):
        pipe.prepare(images(3)[0], torch.zeros(1), seed=0)
    with pytest.raises(UebenchError):
        get_defense("jpeg").prepare(images(4), torch.zeros(16), seed=0)
    with pytest.raises(UebenchError):
        get_defense("grayscale").prepare(images(2), torch.zeros(16), seed=0)
    with pytest.raises(UebenchError):
        step(pipe, tiny(), images(3).float(), torch.zeros(16, dtype=torch.long), epoch=0)


def test_combined_pipeline_trains_with_fit(synthetic) -> None:
    x, y = synthetic
    model = train("jpeg,cutout,at:steps=2", x, y, channels=3, side=16, epochs=2)
    assert np.isfinite(accuracy(model, x, y))


# ----------------------------------------------------------------------------- dataset transforms


def _pil(x: torch.Tensor) -> list[Image.Image]:
    arrays = x.permute(0, 2, 3, 1).numpy()
    return [Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a) for a in arrays]


def _tensor(pils: list[Image.Image], channels: int) -> torch.Tensor:
    arrays = [np.asarray(p) for p in pils]
    arrays = [a[..., None] if a.ndim == 2 else a for a in arrays]
    out = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    return out.expand(-1, channels, -1, -1) if out.shape[1] != channels else out


def _pil_jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue()))


@pytest.mark.parametrize("channels", [1, 3])
def test_jpeg_equals_pil_per_image(channels: int) -> None:
    x = images(channels, n=8, side=32)
    expect = _tensor([_pil_jpeg(p, 10) for p in _pil(x)], channels)
    assert torch.equal(get_defense("jpeg").prepare(x, torch.zeros(8), seed=0), expect)


def test_grayscale_and_bdr_equal_pil() -> None:
    x = images(3, n=32, side=32)
    gray = _tensor([p.convert("L") for p in _pil(x)], 3)
    assert torch.equal(get_defense("grayscale").prepare(x, torch.zeros(32), seed=0), gray)
    for bits in (1, 2, 5):
        poster = _tensor([ImageOps.posterize(p, bits) for p in _pil(x)], 3)
        bdr = get_defense("bdr", {"bits": bits}).prepare(x, torch.zeros(32), seed=0)
        assert torch.equal(bdr, poster)


def test_blur_matches_definition() -> None:
    x = images(3, n=4)
    # APBench's sigma 0.1: the off-centre weights are e^-50, so uint8 images do not change
    assert torch.equal(get_defense("blur").prepare(x, torch.zeros(4), seed=0), x)
    taps = torch.exp(-0.5 * (torch.tensor([-1.0, 0.0, 1.0]) / 1.0) ** 2)
    taps = taps / taps.sum()
    kernel = (taps[:, None] * taps[None, :]).expand(3, 1, 3, 3)
    padded = F.pad(x.float(), (1, 1, 1, 1), mode="reflect")
    expect = F.conv2d(padded, kernel, groups=3).round().to(torch.uint8)
    blurred = get_defense("blur", {"sigma": 1.0}).prepare(x, torch.zeros(4), seed=0)
    assert (blurred.int() - expect.int()).abs().max() <= 1  # float summation order only
    assert (blurred != expect).float().mean() < 1e-3


def test_bdr_removes_linf_8_perturbation_away_from_levels() -> None:
    x = images(3, n=16, side=32)
    sign = torch.randint(0, 2, x.shape, generator=torch.Generator().manual_seed(1)) * 16 - 8
    moved = (x.int() + sign).clamp(0, 255).to(torch.uint8)
    bdr = get_defense("bdr")
    same = bdr.prepare(moved, None, seed=0) == bdr.prepare(x, None, seed=0)
    away = ((x.int() % 64) >= 8) & ((x.int() % 64) < 56)  # 2 bits: levels every 64 values
    assert same[away].all()


def test_jpeg_q10_removes_most_of_an_linf_8_perturbation(synthetic) -> None:
    """ISS (arXiv 2301.13838): low-quality JPEG squeezes small perturbations out. Measured on
    the synthetic images: the share of a random +-8/255 sign perturbation that survives
    compression (its projection on the perturbation) is ~0.09 at q10, ~0.43 at q95."""
    x, y = synthetic
    sign = torch.randint(0, 2, x.shape, generator=torch.Generator().manual_seed(0)) * 16 - 8
    moved = (x.int() + sign).clamp(0, 255).to(torch.uint8)
    delta = (moved.float() - x.float()).flatten(1)

    def survives(quality: int) -> float:
        jpeg = get_defense("jpeg", {"quality": quality})
        diff = (jpeg.prepare(moved, y, seed=0).float() - jpeg.prepare(x, y, seed=0).float())
        return float(((diff.flatten(1) * delta).sum(1) / (delta * delta).sum(1)).median())

    assert survives(10) < 0.25
    assert survives(95) > 0.3  # the measure is not trivially small


def test_jpeg_stacked_codec(synthetic) -> None:
    x = synthetic[0][:6].float() / 255
    out = jpeg_stacked(x, 90)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert torch.equal(out * 255, (out * 255).round())
    # one image: exactly PIL's codec
    single = (x[:1] * 255).round().to(torch.uint8)
    expect = _tensor([_pil_jpeg(p, 37) for p in _pil(single)], 3).float() / 255
    assert torch.equal(jpeg_stacked(x[:1], 37), expect)


# ----------------------------------------------------------------------------- batch transforms


def test_cutout_erases_one_clipped_square() -> None:
    x = torch.ones(256, 3, 32, 32)
    out, _ = get_defense("cutout").apply(x, None, gen=torch.Generator().manual_seed(0))
    erased = out[:, 0] == 0
    assert torch.equal(erased, (out == 0).all(1))  # all channels alike
    rows, cols = erased.any(2).sum(1), erased.any(1).sum(1)
    assert torch.equal(erased.sum((1, 2)), rows * cols)  # one rectangle per image
    assert rows.min() >= 8 and rows.max() == 16 and cols.min() >= 8 and cols.max() == 16
    assert (rows < 16).any()  # boxes at the border are clipped, as DeVries & Taylor


def test_mixup_and_cutmix_labels_follow_pixels() -> None:
    n = 64
    y = torch.arange(n) % 10
    x = (y.float() / 10 + 0.05).view(n, 1, 1, 1).expand(n, 3, 16, 16).contiguous()
    mixed, t = get_defense("mixup").apply(x, y, gen=torch.Generator().manual_seed(0))
    expect = (1 - t.lam.view(-1, 1, 1, 1)) * x + t.lam.view(-1, 1, 1, 1) * (
        t.partner.float() / 10 + 0.05).view(-1, 1, 1, 1)
    assert torch.allclose(mixed, expect, atol=1e-6) and torch.equal(t.y, y)
    pasted, t = get_defense("cutmix").apply(x, y, gen=torch.Generator().manual_seed(0))
    from_partner = (pasted[:, 0] != x[:, 0]).float().mean((1, 2))
    differs = t.partner != y
    assert torch.allclose(t.lam[differs], from_partner[differs])
    assert (t.lam[differs] > 0).any() and (t.lam < 1).all()


def test_ueraser_schedule_and_max_loss(synthetic) -> None:
    x, y = synthetic[0].float() / 255, synthetic[1]

    class Recorder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net, self.outputs = tiny(), []

        def forward(self, inp):
            self.outputs.append(self.net(inp))
            return self.outputs[-1]

    for name, epoch, draws in [("ueraser-lite", 1, 1), ("ueraser", 50, 5), ("ueraser", 51, 1),
                               ("ueraser-max", 1000, 5), ("ueraser:repeats=3", 1, 3)]:
        model = Recorder()
        loss, logits, origin = step(DefensePipeline.from_spec(name), model, x, y, epoch=epoch)
        assert len(model.outputs) == draws and logits is model.outputs[-1] and origin is loss
        ces = torch.stack([F.cross_entropy(o, y, reduction="none") for o in model.outputs])
        assert torch.allclose(loss, ces.amax(0).mean())


def test_ueraser_jpeg_variant(synthetic) -> None:
    x = synthetic[0].float() / 255
    defense = get_defense("ueraser-max", {"jpeg": True})
    assert defense.plasma_probability == 0.8 and get_defense("ueraser").plasma_probability == 1.0
    out = defense.augment(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert torch.equal(out, defense.augment(x, torch.Generator().manual_seed(0)))


# ----------------------------------------------------------------------------- adversarial training


@pytest.mark.parametrize("name", ["at", "at-l2"])
def test_at_perturbation_in_budget_and_eval_mode(name: str, synthetic) -> None:
    x, y = synthetic[0].float() / 255, synthetic[1]
    defense, model = get_defense(name), tiny()
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    adv = defense.perturb(model, x, y, torch.Generator().manual_seed(0))
    delta = (adv - x).flatten(1)
    norm = delta.abs().amax(1) if defense.norm == "linf" else delta.norm(dim=1)
    assert norm.max() <= defense.eps + 1e-5 and norm.max() > 0.5 * defense.eps
    assert adv.min() >= 0 and adv.max() <= 1 and model.training
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in buffers.items())  # BN stats untouched
    with torch.no_grad():
        assert F.cross_entropy(model.eval()(adv), y) > F.cross_entropy(model(x), y)


@pytest.mark.parametrize("spec, attack", [
    ("at:eps=16/255:step_size=4/255", {"eps": 16 / 255, "step_size": 4 / 255}),
    ("at-l2", {}),
])
def test_at_model_is_more_robust(spec: str, attack: dict) -> None:
    """Measured on digits (tiny model, 6 epochs, seeds 0-2): robust accuracy under the same PGD
    std 24-29 % vs AT 43-54 % (linf 16/255); std 8-16 % vs AT 30-41 % (L2 0.5)."""
    s = uebench.load_dataset("digits", train_size=1000, test_size=300)
    name = spec.split(":")[0]
    robust = {}
    for defense in ("", spec):
        model = train(defense, s.train.x, s.train.y, channels=1, side=8, epochs=6)
        xt = s.test.x.float() / 255
        adv = get_defense(name, attack).perturb(model, xt, s.test.y,
                                                torch.Generator().manual_seed(9))
        robust[defense] = accuracy(model, adv, s.test.y)
    assert robust[spec] > robust[""] + 0.1


# ----------------------------------------------------------------------------- grayscale shortcut


def test_grayscale_defeats_a_colour_shortcut() -> None:
    """A class-wise, luma-neutral colour tint (about 24 levels) on gray digits: the undefended
    model learns the tint and fails on untinted test digits (11-15 % over seeds 0-2), the
    grayscale-defended one learns the digits (86-91 %)."""
    s = uebench.load_dataset("digits")

    def gray_rgb(x: torch.Tensor) -> torch.Tensor:  # mid-range values: the tint never clips
        return (64 + x.float() / 2).round().to(torch.uint8).expand(-1, 3, -1, -1).contiguous()

    luma = torch.tensor([0.299, 0.587, 0.114])
    u = torch.randn(10, 3, generator=torch.Generator().manual_seed(0))
    u = u - (u @ luma)[:, None] * luma / (luma @ luma)
    tint = (24 * u / u.norm(dim=1, keepdim=True)).round()
    x = (gray_rgb(s.train.x).float() + tint[s.train.y][:, :, None, None]).to(torch.uint8)
    test = gray_rgb(s.test.x)
    plain = train("", x, s.train.y, channels=3, side=8, epochs=6)
    gray = train("grayscale", x, s.train.y, channels=3, side=8, epochs=6)
    assert accuracy(plain, test, s.test.y) < 0.4
    assert accuracy(gray, test, s.test.y) > 0.7
