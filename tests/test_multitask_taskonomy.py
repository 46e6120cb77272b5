"""The Taskonomy loader on small fixture files written in the dataset's exact formats.

The fixtures follow the real layout (see src/uebench/multitask/taskonomy_files.py): split CSVs
with a header and bare-CR line ends, ``point_P_view_V_domain_D.ext`` names, 8-bit segmentation
PNGs, 16-bit depth and keypoint PNGs, Places365 score vectors as ``.npy``; one building in the
original tree, one in the omnidata tree.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from uebench.errors import ConfigError, DataNotFoundError, UebenchError
from uebench.multitask import load_multitask
from uebench.multitask.taskonomy import KEPT_PLACES, decode_depth, decode_segment
from uebench.multitask.taskonomy_files import parse_split_csv

SIDE = 16
# (building, split, tree, views); "old" = <b>/<task>/, "omni" = <task>/taskonomy/<b>/
BUILDINGS = [
    ("hanson", "train", "old", [("0", "1"), ("0", "2"), ("12", "0")]),
    ("merom", "train", "omni", [("3", "0"), ("4", "1")]),
    ("wiconisco", "val", "old", [("7", "7")]),
]
FOLDERS = {"rgb": ("rgb", "png"), "class_scene": ("class_places", "npy"),
           "segment_semantic": ("segmentsemantic", "png"),
           "depth_euclidean": ("depth_euclidean", "png"), "keypoints2d": ("keypoints2d", "png")}


def split_csv(rows: list[tuple[str, str]]) -> bytes:
    lines = ["id,train,val,test"] + [
        f"{b},{int(s == 'train')},{int(s == 'val')},{int(s == 'test')}" for b, s in rows
    ]
    return "\r".join(lines).encode()  # the official files use bare CR line ends


def sample_arrays(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    depth = rng.integers(256, 8192, (SIDE, SIDE), dtype=np.uint16)
    depth[0, :4] = 65535  # missing (the maximum value)
    depth[1, 0] = 64600  # also missing: above the task bank's 64500 threshold
    seg = rng.integers(0, 18, (SIDE, SIDE), dtype=np.uint8)
    places = rng.random(365)
    places[KEPT_PLACES[seed % 63]] += 50.0  # a clear argmax among the kept classes
    return {"rgb": rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8),
            "class_scene": places / places.sum(), "segment_semantic": seg,
            "depth_euclidean": depth,
            "keypoints2d": rng.integers(0, 700, (SIDE, SIDE), dtype=np.uint16)}


def write_taskonomy(root: Path, *, drop: tuple[str, str, str] | None = None,
                    split_as: str = "csv") -> dict[str, dict[str, np.ndarray]]:
    """Write the fixture tree; returns the arrays per ``building/point_P_view_V`` key."""
    written = {}
    for b_index, (building, _, tree, views) in enumerate(BUILDINGS):
        for v_index, (point, view) in enumerate(views):
            arrays = sample_arrays(100 * b_index + v_index)
            written[f"{building}/point_{point}_view_{view}"] = arrays
            for task, (suffix, ext) in FOLDERS.items():
                if drop == (building, point, task):
                    continue
                folder = (root / building / task if tree == "old"
                          else root / task / "taskonomy" / building)
                folder.mkdir(parents=True, exist_ok=True)
                path = folder / f"point_{point}_view_{view}_domain_{suffix}.{ext}"
                if ext == "npy":
                    np.save(path, arrays[task])
                else:
                    Image.fromarray(arrays[task]).save(path)
    text = split_csv([(b, s) for b, s, _, _ in BUILDINGS] + [("ihlen", "test")])
    if split_as == "zip":
        with zipfile.ZipFile(root / "splits_taskonomy.zip", "w") as zf:
            zf.writestr("splits_taskonomy/train_val_test_tiny.csv", text)
    else:
        (root / "splits_taskonomy").mkdir(exist_ok=True)
        (root / "splits_taskonomy" / "train_val_test_tiny.csv").write_bytes(text)
    return written


@pytest.fixture()
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # no stray real data: the loader searches ./data, ~/.cache/uebench and $UEBENCH_DATA too
    monkeypatch.delenv("UEBENCH_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    root = tmp_path / "tk"
    root.mkdir()
    return root


def test_split_csv_parsing_accepts_cr_lf_and_crlf() -> None:
    rows = [("hanson", "train"), ("corozal", "val"), ("ihlen", "test")]
    for sep in (b"\r", b"\n", b"\r\n"):
        text = split_csv(rows).replace(b"\r", sep).decode()
        assert parse_split_csv(text, "x") == {"train": ["hanson"], "val": ["corozal"],
                                               "test": ["ihlen"]}
    with pytest.raises(UebenchError, match="header"):
        parse_split_csv("name,a,b,c\rx,1,0,0", "x")
    with pytest.raises(UebenchError, match="malformed"):
        parse_split_csv("id,train,val,test\r../etc,1,0,0", "x")


@pytest.mark.parametrize("split_as", ["csv", "zip"])
def test_loader_decodes_every_task_exactly(isolated: Path, split_as: str) -> None:
    written = write_taskonomy(isolated, split_as=split_as)
    data = load_multitask("taskonomy", "train", data_dir=isolated, image_size=SIDE)
    keys = data.meta["keys"]
    # buildings in name order, (point, view) in numeric order, both trees found
    assert keys == ("hanson/point_0_view_1", "hanson/point_0_view_2", "hanson/point_12_view_0",
                    "merom/point_3_view_0", "merom/point_4_view_1")
    assert data.meta["absent_buildings"] == () and data.meta["dropped"] == 0
    assert data.task_names == ("class_scene", "segment_semantic", "depth_euclidean",
                               "keypoints2d")
    for i, key in enumerate(keys):
        a = written[key]
        assert torch.equal(data.x[i], torch.from_numpy(a["rgb"]).permute(2, 0, 1))
        kept = a["class_scene"][list(KEPT_PLACES)]
        assert torch.allclose(data.targets["class_scene"][i],
                              torch.from_numpy(kept / kept.sum()).float())
        seg = a["segment_semantic"].astype(np.int64)
        assert torch.equal(data.targets["segment_semantic"][i].long(),
                           torch.from_numpy(np.where(seg == 0, 255, seg - 1)))
        raw = a["depth_euclidean"].astype(np.float64)
        depth = np.where(raw >= 64500, 0.0, raw / 512.0)
        assert torch.allclose(data.targets["depth_euclidean"][i, 0],
                              torch.from_numpy(depth).float())
        heat = np.clip(a["keypoints2d"] / 65535 / 0.005, 0, 1)
        assert torch.allclose(data.targets["keypoints2d"][i, 0], torch.from_numpy(heat).float())
    assert data.targets["depth_euclidean"][0, 0, 0, :4].eq(0).all()  # 65535 = missing
    assert data.tasks["segment_semantic"].ignore_value == 255
    val = load_multitask("taskonomy", "val", data_dir=isolated, image_size=SIDE)
    assert val.meta["keys"] == ("wiconisco/point_7_view_7",)


def test_pairs_missing_a_task_are_dropped_and_absent_buildings_listed(isolated: Path) -> None:
    write_taskonomy(isolated, drop=("hanson", "12", "depth_euclidean"))
    data = load_multitask("taskonomy", "train", data_dir=isolated, image_size=SIDE)
    assert data.meta["dropped"] == 1 and len(data) == 4
    assert "hanson/point_12_view_0" not in data.meta["keys"]
    # without depth the pair is complete again
    two = load_multitask("taskonomy", "train", data_dir=isolated, image_size=SIDE,
                         tasks=["class_scene", "keypoints2d"])
    assert len(two) == 5 and two.task_names == ("class_scene", "keypoints2d")
    with pytest.raises(UebenchError, match="no test images"):  # 'ihlen' is listed, not on disk
        load_multitask("taskonomy", "test", data_dir=isolated, image_size=SIDE)


def test_resizing_and_limits(isolated: Path) -> None:
    write_taskonomy(isolated)
    data = load_multitask("taskonomy", "train", data_dir=isolated, image_size=8,
                          max_per_building=1)
    assert data.meta["keys"] == ("hanson/point_0_view_1", "merom/point_3_view_0")
    assert data.x.shape == (2, 3, 8, 8)
    assert data.targets["segment_semantic"].shape == (2, 8, 8)
    assert data.targets["depth_euclidean"].shape == (2, 1, 8, 8)
    assert data.targets["keypoints2d"].shape == (2, 1, 8, 8)


def test_nearest_resize_never_mixes_missing_depth(tmp_path: Path) -> None:
    raw = np.full((4, 4), 1024, dtype=np.uint16)
    raw[:2, :2] = 65535
    Image.fromarray(raw).save(tmp_path / "d.png")
    small = decode_depth(tmp_path / "d.png", 2)[0]
    assert torch.equal(small, torch.tensor([[0.0, 2.0], [2.0, 2.0]]))
    labels = np.array([[0, 1], [17, 5]], dtype=np.uint8)
    Image.fromarray(labels).save(tmp_path / "s.png")
    assert decode_segment(tmp_path / "s.png", 2).tolist() == [[255, 0], [16, 4]]


def test_missing_split_file_and_bad_options(isolated: Path) -> None:
    with pytest.raises(DataNotFoundError, match="train_val_test_tiny.csv"):
        load_multitask("taskonomy", "train", data_dir=isolated)
    write_taskonomy(isolated)
    with pytest.raises(UebenchError, match="partition"):
        load_multitask("taskonomy", "train", data_dir=isolated, partition="huge")
    with pytest.raises(ConfigError, match="tasks"):
        load_multitask("taskonomy", "train", data_dir=isolated, tasks=["normal"])
    with pytest.raises(ConfigError, match="split"):
        load_multitask("taskonomy", "validation", data_dir=isolated)
