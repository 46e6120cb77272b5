"""Multi-task dataset contract (every registered dataset), the container, the scenes generator
and the two-item Fashion-MNIST composition."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from uebench.data import ImageSet
from uebench.errors import ConfigError, UebenchError
from uebench.multitask import MULTITASK_DATASETS, MultiTaskSet, TaskSpec, load_multitask
from uebench.multitask.multifashion import compose, overlay_pairs
from uebench.multitask.scenes import SCENE_CLASSES, UNCERTAIN

from .conftest import has_dataset
from .test_multitask_taskonomy import write_taskonomy

# small loads per registered dataset; a new dataset must add itself here (checked below)
CONTRACT: dict[str, dict] = {
    "scenes": {"n": 24, "image_size": 32},
    "multi-fashion-mnist": {"n": 40},
    "multi-mnist": {"n": 40},
    "taskonomy": {"image_size": 8},
}
NEEDS = {"multi-fashion-mnist": "fashion-mnist", "multi-mnist": "mnist"}


def test_every_dataset_has_a_contract_case() -> None:
    assert set(CONTRACT) == set(MULTITASK_DATASETS.names())


@pytest.mark.parametrize("name", MULTITASK_DATASETS.names())
def test_contract(name: str, tmp_path: Path) -> None:
    if name in NEEDS and not has_dataset(NEEDS[name]):
        pytest.skip(f"{NEEDS[name]} files not installed")
    data_dir = None
    if name == "taskonomy":
        write_taskonomy(tmp_path)
        data_dir = tmp_path
    for split in MULTITASK_DATASETS.meta(name)["splits"]:
        if name == "taskonomy" and split == "test":
            continue  # the fixture lists a test building but has no files for it
        a = load_multitask(name, split, data_dir=data_dir, **CONTRACT[name])
        b = load_multitask(name, split, data_dir=data_dir, **CONTRACT[name])
        assert len(a) > 0 and a.x.dtype == torch.uint8 and a.x.dim() == 4
        assert a.meta["source"]
        assert torch.equal(a.x, b.x)  # deterministic
        for task, spec in a.tasks.items():
            assert torch.equal(a.targets[task], b.targets[task]), task
            assert a.targets[task].shape[0] == len(a)
            spec.check(task, a.targets[task], len(a), a.x.shape[2:])  # formats and label ranges
        part = a.subset([len(a) - 1, 0])
        assert part.indices.tolist() == [len(a) - 1, 0]
        assert torch.equal(part.x[1], a.x[0])


# ------------------------------------------------------------------------------ the container
def tiny_set(n: int = 4) -> MultiTaskSet:
    x = torch.arange(n * 3 * 2 * 2, dtype=torch.uint8).view(n, 3, 2, 2)
    return MultiTaskSet(x, {"c": torch.arange(n) % 2, "d": torch.ones(n, 1, 2, 2)},
                        {"c": TaskSpec("classification", 2), "d": TaskSpec("depth", 1)}, "tiny")


def test_subset_select_and_with_images() -> None:
    data = tiny_set()
    nested = data.subset([3, 1, 2]).subset([2, 0])
    assert nested.indices.tolist() == [2, 3]
    assert torch.equal(nested.targets["c"], data.targets["c"][[2, 3]])
    only = data.select(["d"])
    assert only.task_names == ("d",) and torch.equal(only.x, data.x)
    poisoned = data.with_images(255 - data.x)
    assert torch.equal(poisoned.targets["c"], data.targets["c"])
    with pytest.raises(UebenchError, match="differ"):
        data.with_images(data.x[:2])
    with pytest.raises(UebenchError, match="cannot select"):
        data.select(["nope"])


@pytest.mark.parametrize(("spec", "target", "message"), [
    (TaskSpec("classification", 2), torch.tensor([0, 2, 1, 0]), "outside"),
    (TaskSpec("classification", 2), torch.full((4, 2), 0.3), "sum to 1"),
    (TaskSpec("segmentation", 2, ignore_value=255), torch.full((4, 2, 2), 7, dtype=torch.uint8),
     "outside"),
    (TaskSpec("depth", 1, ignore_value=0.0), -torch.ones(4, 1, 2, 2), "> 0"),
    (TaskSpec("keypoints", 1), 2 * torch.ones(4, 1, 2, 2), r"\[0, 1\]"),
    (TaskSpec("depth", 1), torch.ones(4, 2, 2), "shape"),
])
def test_bad_targets_are_refused(spec: TaskSpec, target: torch.Tensor, message: str) -> None:
    with pytest.raises(UebenchError, match=message):
        MultiTaskSet(tiny_set().x, {"t": target}, {"t": spec})


def test_ignored_labels_pass_the_checks() -> None:
    seg = torch.full((4, 2, 2), 255, dtype=torch.uint8)
    MultiTaskSet(tiny_set().x, {"s": seg}, {"s": TaskSpec("segmentation", 3, ignore_value=255)})


def test_load_options_split_and_subsets() -> None:
    full = load_multitask("scenes", "test", n=40, image_size=16)
    a = load_multitask("scenes", "test", n=40, image_size=16, size=10, seed=3)
    b = load_multitask("scenes", "test", n=40, image_size=16, size=10, seed=3)
    assert torch.equal(a.indices, b.indices) and a.indices.tolist() == sorted(a.indices.tolist())
    assert torch.equal(a.x, full.x[a.indices])
    with pytest.raises(ConfigError, match="unknown option"):
        load_multitask("scenes", "train", colour=True)
    with pytest.raises(ConfigError, match="unknown split"):
        load_multitask("scenes", "val")


# ------------------------------------------------------------------------------------- scenes
@pytest.fixture(scope="module")
def scenes() -> MultiTaskSet:
    return load_multitask("scenes", "train", n=200, image_size=32)


def test_scenes_seeds_and_splits_differ(scenes: MultiTaskSet) -> None:
    other_seed = load_multitask("scenes", "train", n=200, image_size=32, data_seed=1)
    test = load_multitask("scenes", "test", n=200, image_size=32)
    assert not torch.equal(scenes.x, other_seed.x) and not torch.equal(scenes.x, test.x)
    assert torch.bincount(scenes.targets["scene"]).tolist() == [50] * len(SCENE_CLASSES)


def test_scenes_targets_are_consistent(scenes: MultiTaskSet) -> None:
    seg, depth = scenes.targets["segment"].long(), scenes.targets["depth"][:, 0]
    closed = scenes.targets["scene"] < 2
    assert not (seg[closed] == 2).any() and not (seg[~closed] == 1).any()  # sky only when open
    assert (depth[seg == 2] == 0).all()  # sky has no depth
    objects = (seg >= 3) & (seg < UNCERTAIN)
    assert (depth[objects] > 0).all() and (depth[objects] < 8).all()  # objects nearer than 8 m
    assert objects.float().mean() > 0.02  # objects are not specks
    # uncertain pixels trace object outlines: a 4-neighbour is an object (or uncertain itself,
    # where a far object's edge pixel next to a near object became uncertain)
    pad = torch.nn.functional.pad(seg, (1, 1, 1, 1), value=0)
    near_object = torch.zeros_like(seg, dtype=torch.bool)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        near_object |= pad[:, dy : dy + 32, dx : dx + 32] >= 3
    uncertain = seg == UNCERTAIN
    assert 0 < uncertain.float().mean() < 0.1 and near_object[uncertain].all()
    peaks = scenes.targets["keypoints"].flatten(2).amax(2)
    present = torch.stack([(seg == 3 + c).flatten(1).any(1) for c in range(3)], 1)
    assert ((peaks >= 0.5) | ~present).all()  # a visible object always has its keypoint
    assert ((peaks == 0) | (peaks >= 0.5)).all()  # absent classes: all-zero channels


# ---------------------------------------------------------------------- Fashion-MNIST overlay
def test_overlay_puts_items_at_opposite_corners_brighter_wins() -> None:
    left = torch.full((1, 1, 28, 28), 100, dtype=torch.uint8)
    right = torch.full((1, 1, 28, 28), 200, dtype=torch.uint8)
    out = overlay_pairs(left, right)[0, 0]
    assert out.shape == (28, 28)
    assert out[0, 0] == 100 and out[27, 27] == 200  # corners: one item each
    assert out[14, 14] == 200  # overlap: the brighter pixel
    assert out[0, 27] == 0 and out[27, 0] == 0  # the two empty corners of the canvas


def test_compose_labels_follow_the_items() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (10, 1, 28, 28), generator=gen, dtype=torch.uint8)
    base = ImageSet(x, torch.arange(10), tuple(str(i) for i in range(10)), "base")
    data = compose(base, 25, torch.Generator().manual_seed(1), "pairs")
    li, ri = data.meta["left_index"], data.meta["right_index"]
    assert torch.equal(data.targets["left"], li) and torch.equal(data.targets["right"], ri)
    assert sorted(li[:10].tolist()) == list(range(10))  # each item once per permutation
    assert torch.equal(data.x[3], overlay_pairs(x[li[3:4]], x[ri[3:4]])[0])
