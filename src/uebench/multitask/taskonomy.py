"""``taskonomy``: the Taskonomy dataset (Zamir et al., CVPR 2018) for the paper's multi-task runs.

The paper (§3.4, arXiv:2509.08058) trains on the *tiny* partition with four tasks: Scene Cls.
(``class_scene``), Segm.2D (``segment_semantic``), Depth Euc. (``depth_euclidean``) and Keyp.2d
(``keypoints2d``). Files, trees and split CSVs: :mod:`uebench.multitask.taskonomy_files`. Targets
are decoded as the dataset's README and its task bank (``taskbank/lib/data/load_ops.py`` and the
``experiments/final/*/config.py`` files) define them:

- ``rgb`` (512 x 512 PNG) -> uint8 3 x S x S, resized with PIL's bilinear filter (antialiased).
- ``class_scene`` (``.npy``, Places365 softmax, 365 values) -> float32 probabilities over the 63
  indoor classes the task bank keeps (:data:`KEPT_PLACES`), renormalised to sum 1 (soft labels;
  a file that already holds those 63 values is renormalised only).
- ``segment_semantic`` (8-bit PNG, 18 values) -> uint8 labels: 0 "uncertain" becomes the ignore
  label 255; 1 (background) .. 17 (16 COCO classes) become 0 .. 16 (:data:`SEGMENT_CLASSES`, the
  task bank's 17 outputs). Resized by nearest neighbour.
- ``depth_euclidean`` (16-bit PNG, units of 1/512 m, max 128 m) -> float32 metres; raw values
  >= 64500 (the task bank's mask threshold: the maximum 65535 marks missing depth, minus a margin)
  become 0 = missing (ignored). Resized by nearest neighbour, so no missing pixel is averaged in.
- ``keypoints2d`` (16-bit PNG heat map) -> float32 ``clip(raw / 65535 / 0.005, 0, 1)``: the task
  bank rescales ``[0, 0.005]`` of the [0, 1]-scaled image to its output range (here [0, 1]).
  Resized by area averaging. Loss: L1 (``heatmap_l1``), as Taskonomy.

Samples are the (point, view) pairs with an RGB image in each building of the split (buildings in
name order, pairs in numeric order); a pair that lacks any requested task is dropped and counted
in ``meta["dropped"]``; buildings without an ``rgb`` folder are skipped and listed in
``meta["absent_buildings"]`` (the omnidata tool does not serve a few). Everything is decoded
into memory: use ``max_per_building`` (the first pairs of each building) for runs on this
machine; the full tiny partition needs a streaming loader (not provided).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from uebench.errors import ConfigError, UebenchError
from uebench.multitask.dataset import MultiTaskSet, register_multitask_dataset
from uebench.multitask.taskonomy_files import (
    DOMAINS,
    HOW_TO_GET,
    Domain,
    find_split,
    list_views,
    task_dir,
)
from uebench.multitask.tasks import TaskSpec

# indices of the 63 Places365 classes kept by the task bank (class_places_workspace_and_home)
KEPT_PLACES = (
    3, 23, 25, 26, 28, 37, 43, 45, 51, 52, 56, 61, 63, 88, 89, 93, 95, 100, 102, 106, 121, 124,
    126, 129, 131, 133, 135, 156, 165, 176, 177, 179, 182, 203, 208, 215, 217, 228, 240, 241, 244,
    246, 248, 253, 255, 264, 269, 280, 281, 282, 285, 298, 303, 311, 317, 318, 328, 332, 343, 346,
    352, 358, 363,
)
PLACES_CLASSES = (
    "alcove", "assembly_line", "atrium/public", "attic", "auto_factory", "bank_vault", "basement",
    "bathroom", "bedchamber", "bedroom", "biology_laboratory", "booth/indoor", "bow_window/indoor",
    "chemistry_lab", "childs_room", "clean_room", "closet", "computer_room", "conference_room",
    "corridor", "dining_room", "dorm_room", "dressing_room", "elevator/door", "elevator_shaft",
    "engine_room", "escalator/indoor", "garage/indoor", "greenhouse/indoor", "home_office",
    "home_theater", "hospital_room", "hotel_room", "kitchen", "laundromat", "living_room", "lobby",
    "mezzanine", "nursery", "nursing_home", "office", "office_cubicles", "operating_room",
    "pantry", "parking_garage/indoor", "physics_laboratory", "playroom", "reception",
    "recreation_room", "repair_shop", "restaurant_kitchen", "server_room", "shower", "stable",
    "staircase", "storage_room", "television_room", "ticket_booth", "utility_room",
    "veterinarians_office", "waiting_room", "wet_bar", "youth_hostel",
)
# taskbank/assets/web_assets/pseudosemantics/coco_selected_classes.txt (raw labels 1..17)
SEGMENT_CLASSES = (
    "background", "bottle", "chair", "couch", "potted plant", "bed", "dining table", "toilet",
    "tv", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase",
)
IGNORE_LABEL = 255
DEPTH_UNITS_PER_METRE = 512.0
DEPTH_MISSING_RAW = 64500
KEYPOINT_FULL_SCALE = 0.005 * 65535  # raw value that maps to 1.0
DEFAULT_TASKS = ("class_scene", "segment_semantic", "depth_euclidean", "keypoints2d")


def _nearest(a: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize of an H x W array to size x size (pixel-centre sampling)."""
    rows = ((np.arange(size) + 0.5) * a.shape[0] / size).astype(np.int64)
    cols = ((np.arange(size) + 0.5) * a.shape[1] / size).astype(np.int64)
    return a[rows][:, cols]


def _png(path: Path, modes: tuple[str, ...]) -> np.ndarray:
    with Image.open(path) as im:
        if im.mode not in modes:
            raise UebenchError(f"{path}: PNG mode {im.mode}, expected one of {modes}")
        return np.array(im)


def decode_rgb(path: Path, size: int) -> torch.Tensor:
    with Image.open(path) as im:
        rgb = im.convert("RGB")
        if rgb.size != (size, size):
            rgb = rgb.resize((size, size), Image.BILINEAR)
        return torch.from_numpy(np.array(rgb).transpose(2, 0, 1).copy())


def decode_scene(path: Path, size: int) -> torch.Tensor:
    scores = np.load(path, allow_pickle=False).astype(np.float64).reshape(-1)
    if scores.size == 365:
        scores = scores[list(KEPT_PLACES)]
    if scores.size != len(KEPT_PLACES) or not np.isfinite(scores).all() or scores.sum() <= 0:
        raise UebenchError(f"{path}: expected 365 (or 63) non-negative Places scores")
    return torch.from_numpy((scores / scores.sum()).astype(np.float32))


def decode_segment(path: Path, size: int) -> torch.Tensor:
    raw = _nearest(_png(path, ("L", "P")), size).astype(np.int64)
    if raw.max(initial=0) > len(SEGMENT_CLASSES):
        raise UebenchError(f"{path}: label {raw.max()} > {len(SEGMENT_CLASSES)}")
    return torch.from_numpy(np.where(raw == 0, IGNORE_LABEL, raw - 1).astype(np.uint8))


def decode_depth(path: Path, size: int) -> torch.Tensor:
    raw = _nearest(_png(path, ("I;16", "I")), size).astype(np.float32)
    metres = np.where(raw >= DEPTH_MISSING_RAW, 0.0, raw / DEPTH_UNITS_PER_METRE)
    # raw 0 would be a depth of 0 m, which is no valid measurement either: also missing
    return torch.from_numpy(metres.astype(np.float32))[None]


def decode_keypoints(path: Path, size: int) -> torch.Tensor:
    raw = torch.from_numpy(_png(path, ("I;16", "I")).astype(np.float32))
    heat = (raw / KEYPOINT_FULL_SCALE).clamp(0, 1)[None, None]
    if tuple(heat.shape[-2:]) != (size, size):
        heat = F.interpolate(heat, size=(size, size), mode="area")
    return heat[0]


@dataclass(frozen=True)
class Target:
    """One Taskonomy task: where its files are, how to decode one, what it is."""

    domain: Domain
    decode: Callable[[Path, int], torch.Tensor]
    spec: TaskSpec


TARGETS = {
    "class_scene": Target(DOMAINS["class_scene"], decode_scene,
                          TaskSpec("classification", len(PLACES_CLASSES), PLACES_CLASSES,
                                   info={"labels": "soft (Places365 scores, 63 indoor)"})),
    "segment_semantic": Target(DOMAINS["segment_semantic"], decode_segment,
                               TaskSpec("segmentation", len(SEGMENT_CLASSES), SEGMENT_CLASSES,
                                        ignore_value=IGNORE_LABEL)),
    "depth_euclidean": Target(DOMAINS["depth_euclidean"], decode_depth,
                              TaskSpec("depth", 1, ignore_value=0.0,
                                       info={"units": "m", "missing": 0.0})),
    "keypoints2d": Target(DOMAINS["keypoints2d"], decode_keypoints,
                          TaskSpec("keypoints", 1, loss="heatmap_l1", metrics=("heatmap_l1",),
                                   info={"scale": "raw / 65535 / 0.005, clipped to [0, 1]"})),
}


def _building(root: Path, rgb_dir: Path, building: str, tasks: Sequence[str], size: int,
              limit: int | None) -> tuple[list[dict[str, torch.Tensor]], list[str], int]:
    """Decoded samples, their keys and the number of dropped pairs of one building."""
    dirs = {t: task_dir(root, building, TARGETS[t].domain) for t in tasks}
    samples, keys, dropped = [], [], 0
    for point, view in list_views(rgb_dir):
        if limit is not None and len(samples) >= limit:
            break
        files = {t: TARGETS[t].domain.file(d, point, view) for t, d in dirs.items() if d}
        if len(files) < len(tasks) or not all(f.is_file() for f in files.values()):
            dropped += 1
            continue
        sample = {t: TARGETS[t].decode(f, size) for t, f in files.items()}
        sample["x"] = decode_rgb(DOMAINS["rgb"].file(rgb_dir, point, view), size)
        samples.append(sample)
        keys.append(f"{building}/point_{point}_view_{view}")
    return samples, keys, dropped


@register_multitask_dataset(
    "taskonomy",
    description="Taskonomy (Zamir et al. 2018): rgb + class_scene, segment_semantic, "
    "depth_euclidean, keypoints2d; official tiny/medium/full/fullplus splits",
    splits=("train", "val", "test"),
    files="<building>/<task>/point_P_view_V_domain_D.ext or <task>/taskonomy/<building>/..., "
    "plus splits_taskonomy/train_val_test_<partition>.csv (or splits_taskonomy.zip)",
    how_to_get=HOW_TO_GET,
    recipe={"augment": "flip"},  # every target is per pixel or global: flips keep them aligned
    probe={"max_per_building": 1},
)
def taskonomy(root: Path | None, split: str, *, tasks: Sequence[str] = DEFAULT_TASKS,
              partition: str = "tiny", image_size: int = 64,
              max_per_building: int | None = None) -> MultiTaskSet:
    """Load one split of a Taskonomy partition, decoded and resized to ``image_size``."""
    tasks = tuple(tasks)
    unknown = [t for t in tasks if t not in TARGETS]
    if unknown or not tasks or image_size < 1:
        raise ConfigError(f"taskonomy: tasks must be a non-empty subset of {list(TARGETS)} "
                          f"(got {list(tasks)}) and image_size >= 1 (got {image_size})")
    folder, splits = find_split(root, partition)
    samples, keys, dropped, absent = [], [], 0, []
    for building in sorted(splits[split]):
        rgb_dir = task_dir(folder, building, DOMAINS["rgb"])
        if rgb_dir is None:  # not downloaded (the omnidata tool skips a few buildings)
            absent.append(building)
            continue
        got, names, lost = _building(folder, rgb_dir, building, tasks, image_size,
                                     max_per_building)
        samples.extend(got)
        keys.extend(names)
        dropped += lost
    if not samples:
        raise UebenchError(f"taskonomy: no {split} images with all of {list(tasks)} under "
                           f"{folder} ({len(splits[split])} buildings listed). {HOW_TO_GET}.")
    targets = {t: torch.stack([s[t] for s in samples]) for t in tasks}
    meta = {"source": f"taskonomy {partition}/{split} from {folder}", "keys": tuple(keys),
            "dropped": dropped, "absent_buildings": tuple(absent)}
    return MultiTaskSet(torch.stack([s["x"] for s in samples]), targets,
                        {t: TARGETS[t].spec for t in tasks}, "taskonomy", meta)
