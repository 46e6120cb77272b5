"""Poison store tests: exact round-trips, quantization within budget, every validation error,
APBench PNG export/import, raw array imports, and refusal of pickled content.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from uebench.attacks import measure
from uebench.data import ImageSet, load_dataset
from uebench.errors import PoisonValidationError
from uebench.poisons import export_apbench, import_apbench, import_array
from uebench.poisons.manifest import MANIFEST, PREVIEW, TENSORS, integrity_hash, read_manifest
from uebench.poisons.store import load_delta, load_poisoned, save_poison
from uebench.poisons.validation import fingerprint

EPS = 8 / 255
UNPICKLED: list[str] = []  # set if a refused file was unpickled after all
IMPORT = {"dataset": "synthetic", "preview": False}


def _mark() -> None:
    UNPICKLED.append("ran")


class Exploit:
    """A pickled object whose loading would run code (here: record that it happened)."""

    def __reduce__(self):
        return (_mark, ())


@pytest.fixture(scope="module")
def clean() -> ImageSet:
    return load_dataset("synthetic", train_size=64, seed=0).train


def uniform_delta(clean: ImageSet, eps: float = EPS, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    d = (torch.rand(clean.x.shape, generator=g) * 2 - 1) * eps
    return (clean.float() + d).clamp(0, 1) - clean.float()


def save(out: Path, clean: ImageSet, delta: torch.Tensor, norm="linf", eps=EPS, **kw) -> dict:
    args = dict(clean=clean, delta=delta, attack="random", preset="original", params={"eps": eps},
                norm=norm, eps=eps, seed=0, dataset="synthetic", seconds=1.5, preview=False)
    args.update(kw)
    return save_poison(out, **args)


def with_images(clean: ImageSet, x: torch.Tensor) -> ImageSet:
    """``clean`` with other images (same labels, classes and indices)."""
    return ImageSet(x, clean.y, clean.classes, clean.name, dict(clean.meta))


def expected_uint8(clean: ImageSet, delta: torch.Tensor) -> torch.Tensor:
    exact = (clean.float().double() + delta.double()) * 255
    return torch.floor(exact + 0.5).clamp(0, 255).to(torch.uint8)


def test_roundtrip_linf_and_manifest(clean: ImageSet, tmp_path: Path) -> None:
    delta = uniform_delta(clean)
    manifest = save(tmp_path / "p", clean, delta, preview=True)
    poisoned = load_poisoned(tmp_path / "p", clean)
    assert torch.equal(poisoned.x, expected_uint8(clean, delta))
    assert torch.equal(poisoned.y, clean.y) and poisoned.classes == clean.classes
    assert torch.equal(poisoned.indices, clean.indices)
    assert poisoned.meta["poison_attack"] == "random"
    on_disk = read_manifest(tmp_path / "p")
    assert on_disk == json.loads(json.dumps(manifest))
    assert {"attack", "preset", "params", "budget", "measured", "n", "seed", "dataset",
            "fingerprint", "image_shape", "num_classes", "uebench_version", "generation_seconds",
            "format_version", "created"} <= set(on_disk)
    assert on_disk["budget"] == {"norm": "linf", "eps": EPS} and on_disk["num_classes"] == 10
    assert on_disk["n"] == 64 and on_disk["image_shape"] == [3, 16, 16]
    assert on_disk["fingerprint"] == fingerprint(clean)
    assert on_disk["measured"]["linf_max"] <= EPS + 1e-12
    d, idx, labels = load_delta(tmp_path / "p")
    assert d.dtype == torch.int16 and torch.equal(idx, clean.indices)
    assert torch.equal(labels, clean.y)
    assert on_disk["measured"] == measure(d.double() / 255)
    assert (tmp_path / "p" / PREVIEW).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    names = sorted(p.name for p in (tmp_path / "p").iterdir())  # no temporary files left
    assert names == sorted([MANIFEST, PREVIEW, TENSORS])


def test_linf_cap_after_rounding(clean: ImageSet, tmp_path: Path) -> None:
    eps = 8.6 / 255  # rounding 8.6 up to 9 would break the budget
    delta = ((clean.float() + eps).clamp(0, 1) - clean.float())
    manifest = save(tmp_path / "p", clean, delta, eps=eps)
    assert manifest["measured"]["linf_max"] == pytest.approx(8 / 255)
    load_poisoned(tmp_path / "p", clean)


def test_l2_quantization_stays_in_budget(clean: ImageSet, tmp_path: Path) -> None:
    eps = 0.5
    g = torch.Generator().manual_seed(1)
    raw = torch.randn(clean.x.shape, generator=g)
    grey = with_images(clean, torch.full_like(clean.x, 128))  # mid-grey: nothing clipped
    delta = raw / raw.flatten(1).norm(dim=1)[:, None, None, None] * eps
    rounded = (torch.floor(delta * 255 + 0.5) / 255).flatten(1).norm(dim=1)
    assert (rounded > eps).any()  # plain rounding would break the budget for some samples
    manifest = save(tmp_path / "p", grey, delta, norm="l2", eps=eps)
    d, _, _ = load_delta(tmp_path / "p")
    norms = (d.double() / 255).flatten(1).norm(dim=1)
    assert (norms <= eps).all() and norms.min() > eps - 0.05
    assert manifest["measured"]["l2_max"] <= eps
    load_poisoned(tmp_path / "p", grey)


def test_pixel_range_is_enforced(clean: ImageSet, tmp_path: Path) -> None:
    delta = torch.full(clean.x.shape, 0.5)  # unbounded and far outside [0, 1] for bright pixels
    manifest = save(tmp_path / "p", clean, delta, norm=None, eps=None)
    assert manifest["range_clamped_entries"] > 0
    poisoned = load_poisoned(tmp_path / "p", clean)
    assert torch.equal(poisoned.x, expected_uint8(clean, delta))


def test_save_refuses_bad_deltas(clean: ImageSet, tmp_path: Path) -> None:
    bad = uniform_delta(clean)
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(PoisonValidationError, match="NaN"):
        save(tmp_path / "p", clean, bad)
    with pytest.raises(PoisonValidationError, match="shape"):
        save(tmp_path / "p", clean, bad[:10])
    assert not (tmp_path / "p" / MANIFEST).exists()


@pytest.fixture()
def stored(clean: ImageSet, tmp_path: Path) -> Path:
    out = tmp_path / "poison"
    save(out, clean, uniform_delta(clean))
    return out


def _rewrite(poison: Path, *, rehash: bool = True, **tensors: torch.Tensor) -> None:
    """Replace stored tensors; ``rehash`` also updates the manifest's sha256, so the deeper
    checks (not the tamper check) are what is tested."""
    import hashlib

    current = load_file(str(poison / TENSORS))
    current.update(tensors)
    save_file(current, str(poison / TENSORS))
    if rehash:
        manifest = json.loads((poison / MANIFEST).read_text())
        manifest["sha256"] = hashlib.sha256((poison / TENSORS).read_bytes()).hexdigest()
        manifest["integrity"] = integrity_hash(manifest)  # resealed: not the edit check either
        (poison / MANIFEST).write_text(json.dumps(manifest))


def test_missing_files(clean: ImageSet, stored: Path, tmp_path: Path) -> None:
    with pytest.raises(PoisonValidationError, match="does not exist"):
        load_poisoned(tmp_path / "nowhere", clean)
    (stored / TENSORS).unlink()
    with pytest.raises(PoisonValidationError, match="no poison.safetensors"):
        load_poisoned(stored, clean)
    (stored / MANIFEST).unlink()
    with pytest.raises(PoisonValidationError, match="did not finish"):
        load_poisoned(stored, clean)


def test_wrong_count_shape_subset(clean: ImageSet, stored: Path) -> None:
    with pytest.raises(PoisonValidationError, match="--train-size 64"):
        load_poisoned(stored, load_dataset("synthetic", train_size=32, seed=0).train)
    with pytest.raises(PoisonValidationError, match="different subset"):
        load_poisoned(stored, load_dataset("synthetic", train_size=64, seed=1).train)
    with pytest.raises(PoisonValidationError, match="poison images are"):
        load_poisoned(stored, with_images(clean, clean.x[:, :1].contiguous()))


def test_labels_and_fingerprint(clean: ImageSet, stored: Path) -> None:
    x = clean.x.clone()
    x[0, 0, 0, 0] ^= 1
    with pytest.raises(PoisonValidationError, match="fingerprint"):
        load_poisoned(stored, with_images(clean, x))
    _rewrite(stored, labels=(clean.y + 1) % 10)
    with pytest.raises(PoisonValidationError, match="labels differ"):
        load_poisoned(stored, clean)


def test_tampered_values(clean: ImageSet, stored: Path) -> None:
    d, _, _ = load_delta(stored)
    nan = d.float()
    nan[0, 0, 0, 0] = float("nan")
    _rewrite(stored, delta=nan)
    with pytest.raises(PoisonValidationError, match="NaN"):
        load_poisoned(stored, clean)
    _rewrite(stored, delta=d.to(torch.int32))
    with pytest.raises(PoisonValidationError, match="int16"):
        load_poisoned(stored, clean)
    big = d.clone()
    big.view(-1)[int(torch.nonzero(clean.x.flatten() < 200)[0])] = 40  # in range, not in 8/255
    _rewrite(stored, delta=big)
    with pytest.raises(PoisonValidationError, match="budget violated"):
        load_poisoned(stored, clean)
    over = d.clone()
    over.view(-1)[int(torch.nonzero(clean.x.flatten() > 250)[0])] = 8  # in 8/255, x + d > 255
    _rewrite(stored, delta=over)
    with pytest.raises(PoisonValidationError, match="pixel range"):
        load_poisoned(stored, clean)
    (stored / TENSORS).write_bytes(b"not a safetensors file")
    with pytest.raises(PoisonValidationError, match="corrupt"):
        load_poisoned(stored, clean)


def test_manifest_version(clean: ImageSet, stored: Path) -> None:
    manifest = json.loads((stored / MANIFEST).read_text())
    manifest["format_version"] = 99
    (stored / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(PoisonValidationError, match="format_version"):
        load_poisoned(stored, clean)


@pytest.mark.parametrize("channels", [3, 1])
def test_apbench_roundtrip(clean: ImageSet, tmp_path: Path, channels: int) -> None:
    data = with_images(clean, clean.x[:, :channels].contiguous())
    save(tmp_path / "p", data, uniform_delta(data))
    folder = export_apbench(tmp_path / "p", data, tmp_path / "apb")
    files = sorted(int(p.stem) for p in folder.glob("*.png"))
    assert files == sorted(data.indices.tolist())
    with Image.open(folder / f"{int(data.indices[0])}.png") as img:
        assert img.mode == ("RGB" if channels == 3 else "L")
    original = load_poisoned(tmp_path / "p", data).x
    import_apbench(tmp_path / "apb", data, attack="random", **IMPORT, out_dir=tmp_path / "q")
    assert torch.equal(load_poisoned(tmp_path / "q", data).x, original)
    assert read_manifest(tmp_path / "q")["budget"] == {"norm": None, "eps": None}
    # TAP's layout: no data/ folder
    shutil.move(str(folder), str(tmp_path / "tap"))
    import_apbench(tmp_path / "tap", data, attack="tap", **IMPORT, out_dir=tmp_path / "r",
                   norm="linf", eps=EPS)
    assert torch.equal(load_poisoned(tmp_path / "r", data).x, original)
    (tmp_path / "tap" / f"{int(data.indices[3])}.png").unlink()
    with pytest.raises(PoisonValidationError, match="have no PNG"):
        import_apbench(tmp_path / "tap", data, attack="tap", **IMPORT, out_dir=tmp_path / "s")


def test_import_arrays(clean: ImageSet, tmp_path: Path) -> None:
    delta = uniform_delta(clean)
    want = expected_uint8(clean, delta)
    np.save(tmp_path / "nchw.npy", delta.numpy())
    np.save(tmp_path / "nhwc.npy", delta.permute(0, 2, 3, 1).numpy())
    torch.save(delta.clone(), tmp_path / "delta.pt")
    for i, name in enumerate(("nchw.npy", "nhwc.npy", "delta.pt")):
        import_array(tmp_path / name, clean, attack="em", **IMPORT, out_dir=tmp_path / f"o{i}",
                     norm="linf", eps=EPS)
        assert torch.equal(load_poisoned(tmp_path / f"o{i}", clean).x, want), name
    # REM-style int8 noise in pixel units
    pixel = torch.round(delta * 255).to(torch.int8)
    torch.save(pixel, tmp_path / "rem.pt")
    import_array(tmp_path / "rem.pt", clean, attack="rem", **IMPORT, out_dir=tmp_path / "rem")
    want = expected_uint8(clean, pixel.double() / 255)
    assert torch.equal(load_poisoned(tmp_path / "rem", clean).x, want)
    with pytest.raises(PoisonValidationError, match="declared eps"):
        import_array(tmp_path / "nchw.npy", clean, attack="em", dataset="synthetic",
                     out_dir=tmp_path / "x", norm="linf", eps=4 / 255)


def test_import_classwise_and_images(clean: ImageSet, tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(3)
    per_class = (torch.rand((10, 3, 16, 16), generator=g) * 2 - 1) * EPS
    torch.save({"perturbation": per_class}, tmp_path / "classwise.pt")
    import_array(tmp_path / "classwise.pt", clean, attack="em", **IMPORT, out_dir=tmp_path / "c")
    want = expected_uint8(clean, per_class[clean.y])  # expanded by label
    assert torch.equal(load_poisoned(tmp_path / "c", clean).x, want)
    images = expected_uint8(clean, uniform_delta(clean))
    np.save(tmp_path / "ntga.npy", images.permute(0, 2, 3, 1).numpy())  # uint8 NHWC
    np.save(tmp_path / "ntga_float.npy", (images.double() / 255).numpy())
    for name in ("ntga.npy", "ntga_float.npy"):
        import_array(tmp_path / name, clean, attack="ntga", **IMPORT,
                     out_dir=tmp_path / f"out_{name}", kind="images")
        assert torch.equal(load_poisoned(tmp_path / f"out_{name}", clean).x, images)
    np.save(tmp_path / "nan.npy", np.full((64, 3, 16, 16), np.nan, dtype=np.float32))
    with pytest.raises(PoisonValidationError, match="NaN"):
        import_array(tmp_path / "nan.npy", clean, attack="em", **IMPORT, out_dir=tmp_path / "n")
    np.save(tmp_path / "short.npy", np.zeros((7, 3, 16, 16), dtype=np.float32))
    with pytest.raises(PoisonValidationError, match="7 entries"):
        import_array(tmp_path / "short.npy", clean, attack="em", **IMPORT, out_dir=tmp_path / "n")


def test_pickles_are_refused(clean: ImageSet, tmp_path: Path) -> None:
    np.save(tmp_path / "objects.npy", np.array([Exploit()], dtype=object), allow_pickle=True)
    with pytest.raises(PoisonValidationError, match="refusing to unpickle"):
        import_array(tmp_path / "objects.npy", clean, attack="em", **IMPORT, out_dir=tmp_path / "a")
    torch.save({"delta": torch.zeros(64, 3, 16, 16), "hook": Exploit()}, tmp_path / "exploit.pt")
    with pytest.raises(PoisonValidationError, match="refusing to unpickle"):
        import_array(tmp_path / "exploit.pt", clean, attack="em", **IMPORT, out_dir=tmp_path / "b")
    (tmp_path / "noise.pkl").write_bytes(b"\x80\x04N.")
    with pytest.raises(PoisonValidationError, match="unsupported file type"):
        import_array(tmp_path / "noise.pkl", clean, attack="rem", **IMPORT, out_dir=tmp_path / "c")
    assert UNPICKLED == []
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
