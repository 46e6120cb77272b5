"""Dataset tests: the contract for every registered dataset whose files are present, plus
pixel-exact round-trips through small fixtures written in each real on-disk format (IDX, CIFAR
python pickles and binary batches, image folders and tar.gz archives, SVHN .mat, ImageNet
folders), bad-input handling, and the real Fashion-MNIST / shared CIFAR-10 JPEG copies.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from uebench.data import DATASETS, cifar, cifar_batches, imagenet, load_dataset
from uebench.data.download import DOWNLOADABLE, SOURCES, _extract, md5sum
from uebench.errors import DataNotFoundError, UebenchError

REPO = Path(__file__).resolve().parents[1]
SHARED_CIFAR = REPO.parent / "shared" / "data" / "cifar10_jpg.tar.gz"
_LOADED: dict[str, object] = {}


def _load_or_skip(name: str):
    """Full splits of a registered dataset, loaded once per test session; skip if files absent."""
    if name not in _LOADED:
        try:
            _LOADED[name] = load_dataset(name)
        except DataNotFoundError as err:
            _LOADED[name] = err
    result = _LOADED[name]
    if isinstance(result, DataNotFoundError):
        pytest.skip(f"{name}: files not present ({str(result).splitlines()[0]})")
    return result


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No data roots but the test's own: empty HOME and CWD, no $UEBENCH_DATA, private cache."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("UEBENCH_DATA", raising=False)
    monkeypatch.setenv("UEBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(home)
    monkeypatch.setattr(cifar, "shared_data_dirs", lambda: [])
    root = tmp_path / "data"
    root.mkdir()
    return root


# ---------------------------------------------------------------------------------------------
# contract, over the registry
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", DATASETS.names())
def test_contract(name: str) -> None:
    splits = _load_or_skip(name)
    for part in (splits.train, splits.test):
        assert part.x.dtype == torch.uint8 and part.x.dim() == 4
        assert part.y.dtype == torch.int64 and part.y.shape == (len(part),)
        assert len(part) > 0
        assert int(part.y.min()) >= 0 and int(part.y.max()) < part.num_classes
        assert part.classes == splits.train.classes
    assert splits.train.image_shape == splits.test.image_shape
    classes = splits.train.classes
    assert all(isinstance(c, str) for c in classes) and len(set(classes)) == len(classes)
    assert torch.unique(splits.train.y).numel() == len(classes), "a class has no training image"


@pytest.mark.parametrize("name", DATASETS.names())
def test_stratified_subsets_balanced_and_deterministic(name: str) -> None:
    full = _load_or_skip(name).train
    n = min(len(full) // 2, 12 * full.num_classes)
    first = load_dataset(name, train_size=n, test_size=n // 2, seed=5)
    again = load_dataset(name, train_size=n, test_size=n // 2, seed=5)
    other = load_dataset(name, train_size=n, test_size=n // 2, seed=6)
    assert len(first.train) == n and len(first.test) == min(n // 2, len(_load_or_skip(name).test))
    assert torch.equal(first.train.indices, again.train.indices)
    assert torch.equal(first.train.x, again.train.x) and torch.equal(first.test.y, again.test.y)
    assert not torch.equal(first.train.indices, other.train.indices)
    # each class gets its proportional share, rounded up or down
    share = torch.bincount(full.y, minlength=full.num_classes).double() * n / len(full)
    counts = torch.bincount(first.train.y, minlength=full.num_classes).double()
    assert torch.all((counts - share).abs() < 1.0)
    assert torch.equal(first.train.x, full.x[first.train.indices])


def test_registered_metadata() -> None:
    for name in ("fashion-mnist", "mnist", "digits", "cifar10", "cifar100", "svhn", "imagenet100"):
        meta = DATASETS.meta(name)
        assert meta["description"] and meta["files"] and meta["how_to_get"]
    assert set(DOWNLOADABLE) <= set(DATASETS.names())


# ---------------------------------------------------------------------------------------------
# IDX (MNIST, Fashion-MNIST)
# ---------------------------------------------------------------------------------------------


def _idx_bytes(array: np.ndarray) -> bytes:
    magic = 2051 if array.ndim == 3 else 2049
    return struct.pack(f">{1 + array.ndim}I", magic, *array.shape) + array.tobytes()


def _write_idx_set(folder: Path, n: int, gz: bool, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for prefix in ("train", "t10k"):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        for kind, arr in (("images-idx3", x), ("labels-idx1", y)):
            name = f"{prefix}-{kind}-ubyte" + (".gz" if gz else "")
            raw = _idx_bytes(arr)
            (folder / name).write_bytes(gzip.compress(raw) if gz else raw)
            arrays[f"{prefix}-{kind}"] = arr
    return arrays


@pytest.mark.parametrize("name,sub,gz", [("fashion-mnist", "fashion-mnist", True),
                                         ("mnist", "MNIST/raw", False), ("mnist", "", True)])
def test_idx_round_trip(isolated: Path, name: str, sub: str, gz: bool) -> None:
    arrays = _write_idx_set(isolated / sub if sub else isolated, 20, gz)
    fn = DATASETS.get(name)
    train, test = fn(isolated, True), fn(isolated, False)
    assert train.x.shape == (20, 1, 28, 28) and len(test) == 20
    assert np.array_equal(train.x[:, 0].numpy(), arrays["train-images-idx3"])
    assert np.array_equal(test.y.numpy(), arrays["t10k-labels-idx1"].astype(np.int64))
    assert "IDX" in train.meta["source"]


def test_idx_corrupt_files_raise(isolated: Path) -> None:
    folder = isolated / "mnist"
    _write_idx_set(folder, 10, gz=True)
    target = folder / "train-images-idx3-ubyte.gz"
    good = target.read_bytes()
    target.write_bytes(good[: len(good) // 2])  # truncated download
    with pytest.raises(UebenchError, match="train-images-idx3-ubyte.gz"):
        DATASETS.get("mnist")(isolated, True)
    raw = gzip.decompress(good)
    target.write_bytes(gzip.compress(raw[:-100]))  # valid gzip, payload shorter than its header
    with pytest.raises(UebenchError, match="truncated"):
        DATASETS.get("mnist")(isolated, True)
    target.write_bytes(gzip.compress(struct.pack(">I", 1234) + raw[4:]))  # wrong magic
    with pytest.raises(UebenchError, match="magic"):
        DATASETS.get("mnist")(isolated, True)
    target.write_bytes(b"<html>not found</html>")  # not gzip at all
    with pytest.raises(UebenchError, match="corrupt"):
        DATASETS.get("mnist")(isolated, True)


# ---------------------------------------------------------------------------------------------
# CIFAR python pickles and binary batches
# ---------------------------------------------------------------------------------------------

_RECONSTRUCT = np.zeros(1).__reduce__()[0]


class _Py2Pickler(pickle._Pickler):
    """Writes protocol 2 as Python 2's cPickle did for CIFAR: str/bytes as byte strings
    (SHORT_BINSTRING / BINSTRING) and arrays via ``numpy.core.multiarray._reconstruct``."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj: str | bytes) -> None:
        data = obj.encode("latin-1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = _save_py2_str
    dispatch[bytes] = _save_py2_str

    def save_global(self, obj: object, name: str | None = None) -> None:
        if obj is _RECONSTRUCT:
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
        else:
            super().save_global(obj, name)


def _py2_pickle(obj: object, path: Path) -> None:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    path.write_bytes(buf.getvalue())


def _cifar_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, (n, 3072), dtype=np.uint8)


def test_cifar10_pickle_round_trip(isolated: Path) -> None:
    folder = isolated / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    rows = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        rows[name] = (_cifar_rows(rng, 4), [int(v) for v in rng.integers(0, 10, 4)])
        batch = {"batch_label": name, "labels": rows[name][1], "data": rows[name][0],
                 "filenames": [f"img{i}.png" for i in range(4)]}
        _py2_pickle(batch, folder / name)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
             "truck"]
    _py2_pickle({"label_names": names, "num_cases_per_batch": 4, "num_vis": 3072},
                folder / "batches.meta")
    assert b"numpy.core.multiarray" in (folder / "test_batch").read_bytes()
    train = DATASETS.get("cifar10")(isolated, True)
    test = DATASETS.get("cifar10")(isolated, False)
    assert train.x.shape == (20, 3, 32, 32) and test.x.shape == (4, 3, 32, 32)
    assert train.classes == tuple(names)
    assert np.array_equal(test.x.numpy().reshape(4, -1), rows["test_batch"][0])
    assert test.y.tolist() == rows["test_batch"][1]
    assert np.array_equal(train.x[4:8].numpy().reshape(4, -1), rows["data_batch_2"][0])
    # the R plane comes first: pixel (0, 0) of the red channel is byte 0, green is byte 1024
    assert int(test.x[0, 1, 0, 0]) == int(rows["test_batch"][0][0, 1024])
    assert "python batches" in train.meta["source"]


def test_cifar100_pickle_round_trip_python3_protocol2(isolated: Path) -> None:
    # a copy re-pickled by Python 3 (bytes written via _codecs.encode) must load as well
    folder = isolated / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(1)
    data = {s: _cifar_rows(rng, 6) for s in ("train", "test")}
    fine = {s: [int(v) for v in rng.integers(0, 100, 6)] for s in ("train", "test")}
    for s in ("train", "test"):
        batch = {b"data": data[s], b"fine_labels": fine[s], b"coarse_labels": [0] * 6}
        (folder / s).write_bytes(pickle.dumps(batch, protocol=2))
    names = [f"class{i:03d}".encode() for i in range(100)]
    (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": names}, protocol=2))
    assert b"_codecs" in (folder / "train").read_bytes()
    test = DATASETS.get("cifar100")(isolated, False)
    assert test.num_classes == 100 and test.classes[7] == "class007"
    assert np.array_equal(test.x.numpy().reshape(6, -1), data["test"])
    assert test.y.tolist() == fine["test"]


class _Evil:
    """Unpickling this calls ``func(arg)``: what a booby-trapped "CIFAR batch" would do."""

    def __init__(self, func: object, arg: str) -> None:
        self.func, self.arg = func, arg

    def __reduce__(self):
        return (self.func, (self.arg,))


@pytest.mark.parametrize("payload", ["os.system", "builtins.eval"])
def test_malicious_pickle_is_refused(isolated: Path, payload: str) -> None:
    folder = isolated / "cifar-10-batches-py"
    folder.mkdir()
    marker = isolated / "pwned"
    evil = (_Evil(os.system, f"touch {marker}") if payload == "os.system"
            else _Evil(eval, f"open({str(marker)!r}, 'w').close()"))
    blob = pickle.dumps({b"data": evil, b"labels": []}, protocol=2)
    assert payload.split(".")[1].encode() in blob
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        (folder / name).write_bytes(blob)
    with pytest.raises(cifar_batches.UnsafePickleError, match="refusing to unpickle global"):
        DATASETS.get("cifar10")(isolated, False)
    assert not marker.exists()


def test_cifar10_binary_round_trip_and_truncation(isolated: Path) -> None:
    folder = isolated / "cifar-10-batches-bin"
    folder.mkdir()
    rng = np.random.default_rng(2)
    records = {}
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        rec = np.concatenate([rng.integers(0, 10, (3, 1)), _cifar_rows(rng, 3)], axis=1)
        records[name] = rec.astype(np.uint8)
        (folder / name).write_bytes(records[name].tobytes())
    test = DATASETS.get("cifar10")(isolated, False)
    assert np.array_equal(test.x.numpy().reshape(3, -1), records["test_batch.bin"][:, 1:])
    assert test.y.tolist() == records["test_batch.bin"][:, 0].tolist()
    assert len(DATASETS.get("cifar10")(isolated, True)) == 15
    (folder / "test_batch.bin").write_bytes(records["test_batch.bin"].tobytes()[:-7])
    with pytest.raises(UebenchError, match="truncated"):
        DATASETS.get("cifar10")(isolated, False)


# ---------------------------------------------------------------------------------------------
# image folders and tar.gz archives (the layout of the shared CIFAR-10 JPEG copy)
# ---------------------------------------------------------------------------------------------

_CLASSES = ("cat", "airplane", "dog")  # deliberately unsorted: label order must be sorted names


def _write_tree(folder: Path, n: int = 3, fmt: str = "PNG") -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(3)
    images: dict[str, dict[str, np.ndarray]] = {"train": {}, "test": {}}
    for split in images:
        for cls in _CLASSES:
            (folder / split / cls).mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                ext = "png" if fmt == "PNG" else "jpg"
                Image.fromarray(img).save(folder / split / cls / f"{i:04d}.{ext}", fmt, quality=75)
                images[split][f"{cls}/{i}"] = img
    (folder / "train" / "cat" / ".DS_Store").write_bytes(b"junk")  # must be ignored
    return images


def _tar_gz(src: Path, archive: Path) -> None:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname=src.name)


def _check_tree(x: torch.Tensor, y: torch.Tensor, images: dict[str, np.ndarray]) -> None:
    order = sorted(_CLASSES)
    assert y.tolist() == [i for i in range(3) for _ in range(3)]
    for k, (cls, i) in enumerate((c, i) for c in order for i in range(3)):
        assert np.array_equal(x[k].permute(1, 2, 0).numpy(), images[f"{cls}/{i}"])


def test_image_folder_round_trip(isolated: Path) -> None:
    images = _write_tree(isolated / "cifar10")
    train = DATASETS.get("cifar10")(isolated, True)
    assert train.classes == ("airplane", "cat", "dog")
    _check_tree(train.x, train.y, images["train"])
    assert "PNG folders" in train.meta["source"]


def test_archive_round_trip_and_cache(isolated: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    images = _write_tree(tmp_path / "cifar10_png")
    archive = isolated / "cifar10_jpg.tar.gz"
    _tar_gz(tmp_path / "cifar10_png", archive)
    test = DATASETS.get("cifar10")(isolated, False)
    _check_tree(test.x, test.y, images["test"])
    assert "PNG archive" in test.meta["source"]
    cached = sorted(p.name for p in (tmp_path / "cache" / "decoded").iterdir())
    assert len(cached) == 2 and all(p.endswith(".npz") for p in cached)

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded again instead of using the cache")

    monkeypatch.setattr(cifar, "decode_tree", no_decoding)
    again = DATASETS.get("cifar10")(isolated, True)  # the train split was cached too
    _check_tree(again.x, again.y, images["train"])
    os.utime(archive, ns=(1, 1))  # a changed archive must not be served from the stale cache
    with pytest.raises(AssertionError, match="decoded again"):
        DATASETS.get("cifar10")(isolated, True)
    monkeypatch.undo()


def test_jpeg_archive_reports_quality(isolated: Path, tmp_path: Path) -> None:
    _write_tree(tmp_path / "cifar10_jpg", n=3, fmt="JPEG")
    _tar_gz(tmp_path / "cifar10_jpg", isolated / "cifar10_jpg.tar.gz")
    train = DATASETS.get("cifar10")(isolated, True)
    assert train.x.shape == (9, 3, 32, 32)
    assert "JPEG q75 re-encode archive" in train.meta["source"]


def test_damaged_cache_is_rebuilt(isolated: Path, tmp_path: Path) -> None:
    images = _write_tree(tmp_path / "t")
    _tar_gz(tmp_path / "t", isolated / "cifar10_png.tar.gz")
    DATASETS.get("cifar10")(isolated, True)
    for f in (tmp_path / "cache" / "decoded").iterdir():
        f.write_bytes(b"garbage")
    train = DATASETS.get("cifar10")(isolated, True)
    _check_tree(train.x, train.y, images["train"])


def test_corrupt_archives_raise(isolated: Path, tmp_path: Path) -> None:
    archive = isolated / "cifar10_jpg.tar.gz"
    archive.write_bytes(os.urandom(5000))  # not gzip
    with pytest.raises(UebenchError, match="cannot read the archive"):
        DATASETS.get("cifar10")(isolated, True)
    _write_tree(tmp_path / "good")
    _tar_gz(tmp_path / "good", tmp_path / "good.tar.gz")
    blob = (tmp_path / "good.tar.gz").read_bytes()
    archive.write_bytes(blob[: len(blob) // 2])  # truncated copy
    with pytest.raises(UebenchError, match="truncated"):
        DATASETS.get("cifar10")(isolated, True)
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.png").write_bytes((tmp_path / "good/train/cat/0000.png").read_bytes())
    _tar_gz(tmp_path / "flat", archive)  # a valid archive without train/ and test/ folders
    with pytest.raises(UebenchError, match="train/<class>"):
        DATASETS.get("cifar10")(isolated, True)


# ---------------------------------------------------------------------------------------------
# SVHN .mat, ImageNet folders, missing files, downloads
# ---------------------------------------------------------------------------------------------


def test_svhn_mat_round_trip_and_corruption(isolated: Path) -> None:
    from scipy.io import savemat

    folder = isolated / "svhn"
    folder.mkdir()
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, (32, 32, 3, 12), dtype=np.uint8)  # H, W, C, N as in the release
    y = (np.arange(12) % 10 + 1).reshape(-1, 1).astype(np.uint8)  # 1..10, 10 = digit 0
    for name in ("train_32x32.mat", "test_32x32.mat"):
        savemat(folder / name, {"X": x, "y": y})
    test = DATASETS.get("svhn")(isolated, False)
    assert test.x.shape == (12, 3, 32, 32)
    assert np.array_equal(test.x.numpy(), x.transpose(3, 2, 0, 1))
    assert test.y.tolist() == [v % 10 for v in y.ravel().tolist()] and 0 in test.y.tolist()
    (folder / "test_32x32.mat").write_bytes(b"MATLAB 5.0 MAT-file" + os.urandom(300))
    with pytest.raises(UebenchError, match="test_32x32.mat"):
        DATASETS.get("svhn")(isolated, False)


def _imagenet_tree(root: Path, n_classes: int, per_class: int) -> None:
    rng = np.random.default_rng(5)
    for split, n in (("train", per_class), ("val", 1)):
        for c in range(n_classes):
            folder = root / "imagenet100" / split / f"n{c:08d}"
            folder.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (8, 6, 3), dtype=np.uint8)).save(
                    folder / f"img{i}.png")


def test_imagenet_folder(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _imagenet_tree(isolated, n_classes=101, per_class=4)  # one class too many: it is dropped
    rng = np.random.default_rng(6)
    first = isolated / "imagenet100" / "val" / "n00000000"
    exact = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    Image.fromarray(exact).save(first / "a_exact.png")
    wide = Image.fromarray(rng.integers(0, 256, (300, 448, 3), dtype=np.uint8))
    wide.save(first / "b_wide.png")
    Image.fromarray(rng.integers(0, 256, (250, 240), dtype=np.uint8)).save(first / "c_grey.png")
    Image.new("CMYK", (230, 260), (10, 20, 30, 40)).save(first / "d_cmyk.jpg")
    val = DATASETS.get("imagenet100")(isolated, False)
    assert val.num_classes == 100 and val.classes[0] == "n00000000"
    assert val.x.shape == (104, 3, 224, 224) and val.y[:5].tolist() == [0] * 5
    assert np.array_equal(val.x[0].permute(1, 2, 0).numpy(), exact)
    expected = np.asarray(wide.resize((334, 224), Image.Resampling.BILINEAR))[:, 55:279]
    assert np.array_equal(val.x[1].permute(1, 2, 0).numpy(), expected)
    assert torch.equal(val.x[2, 0], val.x[2, 2])  # greyscale became RGB
    monkeypatch.setenv("UEBENCH_IMAGENET_FRACTION", "0.5")
    half = DATASETS.get("imagenet100")(isolated, True)
    assert len(half) == 200 and torch.equal(torch.bincount(half.y), torch.full((100,), 2))
    assert torch.equal(half.x, DATASETS.get("imagenet100")(isolated, True).x)
    monkeypatch.setenv("UEBENCH_IMAGENET_FRACTION", "2")
    with pytest.raises(UebenchError, match="UEBENCH_IMAGENET_FRACTION"):
        DATASETS.get("imagenet100")(isolated, True)


@pytest.mark.parametrize("name", ["mnist", "cifar10", "cifar100", "svhn", "imagenet100"])
def test_missing_files_list_where_we_looked(isolated: Path, name: str) -> None:
    with pytest.raises(DataNotFoundError) as info:
        DATASETS.get(name)(isolated, True)
    message = str(info.value)
    assert str(isolated) in message and "How to get it" in message and "--data-dir" in message


def test_shared_dir_found_from_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    assert (REPO.parent / "shared" / "data").resolve() in imagenet.shared_data_dirs()


def test_download_table_and_safe_extract(tmp_path: Path) -> None:
    # never downloads: checks the table and the local unpacking step only
    for name in DOWNLOADABLE:
        for res in SOURCES[name][1]:
            assert len(res.md5) == 32 and all(u.startswith(("http://", "https://"))
                                              for u in res.urls)
    (tmp_path / "src" / "cifar-10-batches-py").mkdir(parents=True)
    (tmp_path / "src" / "cifar-10-batches-py" / "test_batch").write_bytes(b"x")
    good = tmp_path / "good.tar.gz"
    with tarfile.open(good, "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    dest = tmp_path / "dest"
    dest.mkdir()
    _extract(good, dest)
    _extract(good, dest)  # a second unpack replaces the first
    assert (dest / "cifar-10-batches-py" / "test_batch").read_bytes() == b"x"
    assert md5sum(dest / "cifar-10-batches-py" / "test_batch") == "9dd4e461268c8034f5c8564e155c67a6"
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("../escaped")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(UebenchError):
        _extract(evil, dest)
    assert not (tmp_path / "escaped").exists()


# ---------------------------------------------------------------------------------------------
# real data (skipped when absent)
# ---------------------------------------------------------------------------------------------


def test_digits_split() -> None:
    train, test = DATASETS.get("digits")(None, True), DATASETS.get("digits")(None, False)
    assert (len(train), len(test)) == (1438, 359) and train.image_shape == (1, 8, 8)
    assert int(train.x.max()) == 255 and int(train.x.min()) == 0
    assert torch.equal(train.x, DATASETS.get("digits")(None, True).x)


def test_fashion_mnist_real() -> None:
    splits = _load_or_skip("fashion-mnist")
    assert splits.train.x.shape == (60000, 1, 28, 28) and splits.test.x.shape == (10000, 1, 28, 28)
    assert torch.equal(torch.bincount(splits.train.y), torch.full((10,), 6000))
    assert abs(splits.test.float().mean().item() * 255 - 73.15) < 0.05


@pytest.mark.slow  # about 20 s the first time (decoding 60k JPEGs), under 2 s once cached
@pytest.mark.skipif(not SHARED_CIFAR.exists(), reason=f"{SHARED_CIFAR} not present")
def test_shared_cifar10_jpeg_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # find the archive by itself: no data roots, CWD elsewhere; keep the user's decode cache
    cache = os.environ.get("UEBENCH_CACHE") or str(Path.home() / ".cache" / "uebench")
    monkeypatch.setenv("UEBENCH_CACHE", cache)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("UEBENCH_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    splits = load_dataset("cifar10")
    assert splits.train.x.shape == (50000, 3, 32, 32) and splits.test.x.shape == (10000, 3, 32, 32)
    assert splits.classes[0] == "airplane" and splits.classes[-1] == "truck"
    assert torch.equal(torch.bincount(splits.train.y), torch.full((10,), 5000))
    assert "JPEG q75 re-encode archive" in splits.train.meta["source"]
    # per-channel mean in [0, 1] (docs/datasets.md: 0.4913, 0.4821, 0.4465); integer sums: cheap
    mean = splits.train.x.sum(dim=(0, 2, 3), dtype=torch.int64).double() / (50000 * 1024 * 255)
    assert np.allclose(mean.numpy(), (0.4913, 0.4821, 0.4465), atol=2e-4)
