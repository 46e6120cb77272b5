"""``scenes``: procedural multi-task images (scene class, segmentation, depth, 2D keypoints).

A small stand-in for the paper's Taskonomy setting (§3.4, arXiv:2509.08058) that needs no files
and trains on a CPU in minutes. Each image is a rendered view of a floor plane under a pinhole
camera (focal length = image side ``S`` pixels, horizontal optical axis, principal point at
``(S/2, h)`` where ``h`` is the horizon row) with up to three textured objects standing on it:

- **layout**: *closed* scenes end in a back wall at depth ``D_w`` in [5, 10] m; in *open* scenes the
  rows above the horizon are sky. Floor z-depth at row ``y`` is ``f*c / (y - h)`` (camera height
  ``c`` chosen so the bottom row is 1.5 m away).
- **floor texture**: perspective-correct *stripes* (across the viewing direction) or *checks*,
  with a random period in [0.4, 0.8] m, so texture frequency is a depth cue; random colours.
- **objects**: each shape class (disc, square, triangle) appears at most once; 1-3 classes per
  image, drawn without replacement with scene-dependent weights (:data:`SHAPE_PRIOR`). An object
  at z-depth ``z`` in [1.8, 6] m stands on the floor (its bottom edge at the floor row of depth
  ``z``) and has a size proportional to ``1/z``; nearer objects occlude farther ones; colours and
  textures are random, so the shape class must be read from the outline.

Targets (all derived from the same geometry, so the tasks are related but not identical):

- ``scene`` (classification, 4 classes): layout x floor texture (:data:`SCENE_CLASSES`); the
  object co-occurrence prior differs per scene as well.
- ``segment`` (segmentation, 6 classes :data:`SEGMENT_CLASSES`): floor, wall, sky and the three
  shapes; the pixels just outside an object outline get the "uncertain" label 255 (ignored, as
  Taskonomy's label 0).
- ``depth`` (depth, metres): Euclidean distance from the camera centre, ``z * sqrt(1 + ((x - S/2)^2
  + (y - h)^2) / f^2)``; sky and floor beyond :data:`MAX_DEPTH` are missing (value 0).
- ``keypoints`` (3 heat maps): one channel per shape class, a Gaussian (sigma ``S/32`` px, peak 1)
  at the object's centre (amodal: also when occluded); all zeros when the class is absent.

Images are generated from a ``torch.Generator`` seeded by ``derive_seed(data_seed, 1, split)``:
the same (data_seed, split, n, image_size) always gives the same bytes. ``data_seed`` names the
dataset; it is not the run seed (``load_multitask(seed=...)`` only draws subsets).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from uebench.errors import ConfigError
from uebench.multitask.dataset import MultiTaskSet, register_multitask_dataset
from uebench.multitask.tasks import TaskSpec
from uebench.runtime import derive_seed

SCENE_CLASSES = ("closed-stripes", "closed-checks", "open-stripes", "open-checks")
SHAPES = ("disc", "square", "triangle")
SEGMENT_CLASSES = ("floor", "wall", "sky", *SHAPES)
# P(shape | scene) weights: the scene label is tied to which objects appear, as in real scenes
SHAPE_PRIOR = torch.tensor(
    [[0.6, 0.3, 0.1], [0.1, 0.6, 0.3], [0.3, 0.1, 0.6], [0.34, 0.33, 0.33]]
)
MAX_DEPTH = 20.0  # metres: simulated sensor range (Taskonomy's is 128 m)
MISSING_DEPTH = 0.0
UNCERTAIN = 255
_SPLITS = ("train", "test")
_DEFAULT_N = {"train": 2000, "test": 500}
_CHUNK = 256


def scene_tasks() -> dict[str, TaskSpec]:
    """The four task specs of :func:`scenes`."""
    return {
        "scene": TaskSpec("classification", len(SCENE_CLASSES), SCENE_CLASSES),
        "segment": TaskSpec("segmentation", len(SEGMENT_CLASSES), SEGMENT_CLASSES,
                            ignore_value=UNCERTAIN),
        "depth": TaskSpec("depth", 1, ignore_value=MISSING_DEPTH,
                          info={"units": "m", "max_depth": MAX_DEPTH, "missing": 0.0}),
        "keypoints": TaskSpec("keypoints", len(SHAPES), SHAPES, loss="heatmap_ce",
                              metrics=("keypoint_error",),
                              info={"keypoint": "object centre", "sigma_px": "S/32"}),
    }


def _uniform(gen: torch.Generator, lo: float, hi: float, *shape: int) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(*shape, generator=gen)


def _draw(n: int, side: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Per-image scene parameters (all sizes in pixels or metres)."""
    scene = torch.randperm(n, generator=gen) % len(SCENE_CLASSES)  # balanced classes
    # Gumbel top-k = sampling k shape classes without replacement with the scene's weights
    gumbel = -torch.log(-torch.log(torch.rand(n, 3, generator=gen).clamp(1e-9, 1 - 1e-9)))
    keys = SHAPE_PRIOR[scene].log() + gumbel
    count = torch.randint(1, 4, (n,), generator=gen)
    rank = keys.argsort(1, descending=True).argsort(1)
    p = {
        "scene": scene, "present": rank < count[:, None],
        "horizon": _uniform(gen, 0.2, 0.45, n) * side,
        "wall": _uniform(gen, 5.0, 10.0, n), "period": _uniform(gen, 0.4, 0.8, n),
        "floor0": torch.rand(n, 3, generator=gen), "floor1": torch.rand(n, 3, generator=gen),
        "wall_rgb": torch.rand(n, 3, generator=gen), "sky0": torch.rand(n, 3, generator=gen),
        "sky1": torch.rand(n, 3, generator=gen),
        "wall_noise": torch.rand(n, 1, 6, 6, generator=gen),
        "obj_rgb": torch.rand(n, 3, 3, generator=gen),
        "obj_size": _uniform(gen, 0.7, 1.2, n, 3), "obj_u": torch.rand(n, 3, generator=gen),
        "obj_z01": torch.rand(n, 3, generator=gen),
    }
    closed = scene < 2
    zmax = torch.where(closed, (p["wall"] - 0.5).clamp(max=6.0), torch.full((n,), 6.0))
    p["obj_z"] = 1.8 + p["obj_z01"] * (zmax[:, None] - 1.8)
    return p


def _layout(p: dict[str, torch.Tensor], side: int) -> tuple[torch.Tensor, ...]:
    """Background labels, z-depth (inf = no return), colours (N x 3 x S x S) of floor/wall/sky."""
    n = p["scene"].shape[0]
    ys = torch.arange(side) + 0.5
    xs = torch.arange(side) + 0.5
    h = p["horizon"][:, None, None]
    fc = 1.5 * (side - h)  # focal * camera height, so the bottom row is 1.5 m away
    rows = ys[None, :, None].expand(n, side, side)
    floor_z = torch.where(rows > h, fc / (rows - h).clamp_min(1e-3),
                          torch.full_like(rows, math.inf))
    closed = (p["scene"] < 2)[:, None, None]
    is_wall = closed & (floor_z > p["wall"][:, None, None])
    is_sky = ~closed & (rows <= h)
    label = torch.where(is_wall, 1, torch.where(is_sky, 2, 0)).long()
    z = torch.where(is_wall, p["wall"][:, None, None].expand_as(floor_z), floor_z)
    # floor texture in world coordinates on the plane (Z forward, X sideways)
    zc = floor_z.clamp(max=4 * MAX_DEPTH)
    wx = (xs[None, None, :] - side / 2) * zc / side
    per = p["period"][:, None, None]
    stripes = torch.sin(2 * math.pi * zc / per)
    checks = torch.sin(2 * math.pi * zc / per) * torch.sin(2 * math.pi * wx / per)
    tex = 0.5 + 0.5 * torch.where((p["scene"] % 2 == 0)[:, None, None], stripes, checks)
    floor = p["floor0"][:, :, None, None] + tex[:, None] * (p["floor1"] - p["floor0"])[:, :, None,
                                                                                        None]
    noise = F.interpolate(p["wall_noise"], size=(side, side), mode="bilinear", align_corners=False)
    wall = p["wall_rgb"][:, :, None, None] * (0.75 + 0.5 * noise)
    grad = (ys / side)[None, None, :, None]
    sky = p["sky0"][:, :, None, None] + grad * (p["sky1"] - p["sky0"])[:, :, None, None]
    rgb = torch.where(is_wall[:, None], wall, torch.where(is_sky[:, None], sky, floor))
    return label, z, rgb


def _objects(p: dict[str, torch.Tensor], side: int) -> tuple[torch.Tensor, ...]:
    """Per-slot masks, centres and textures of the three shape classes (N x 3 x S x S)."""
    h = p["horizon"][:, None]
    fc = 1.5 * (side - h)
    z = p["obj_z"]
    half = p["obj_size"] * side / z / 2  # half-size in pixels, focal = side
    cy = h + fc / z - half  # the bottom edge stands on the floor row of depth z
    cx = half + p["obj_u"] * (side - 2 * half)
    ys = (torch.arange(side) + 0.5)[None, None, :, None]
    xs = (torch.arange(side) + 0.5)[None, None, None, :]
    dx, dy = xs - cx[..., None, None], ys - cy[..., None, None]
    a = half[..., None, None]
    disc = dx**2 + dy**2 <= a**2
    square = (dx.abs() <= a) & (dy.abs() <= a)
    triangle = (dy <= a) & (dx.abs() <= (dy + a) / 2)  # apex up at (cx, cy - a)
    cover = torch.stack([disc[:, 0], square[:, 1], triangle[:, 2]], 1) & p["present"][..., None,
                                                                                        None]
    q = 0.8 * a
    tex = 0.7 + 0.3 * torch.sin(2 * math.pi * dx / q) * torch.sin(2 * math.pi * dy / q)
    sigma = side / 32
    heat = torch.exp(-(dx**2 + dy**2) / (2 * sigma**2)) * p["present"][..., None, None]
    return cover, tex, heat, cx, cy


def _uncertain(label: torch.Tensor) -> torch.Tensor:
    """Pixels just outside an object outline (a 4-neighbour has another, object label)."""
    padded = F.pad(label[:, None].float(), (1, 1, 1, 1), mode="replicate")[:, 0].long()
    out = torch.zeros_like(label, dtype=torch.bool)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        nb = padded[:, dy : dy + label.shape[1], dx : dx + label.shape[2]]
        out |= (nb != label) & (nb >= 3)
    return out


def render(p: dict[str, torch.Tensor], side: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Images (uint8) and the four targets of the scenes described by ``p``."""
    label, z, rgb = _layout(p, side)
    cover, tex, heat, _, _ = _objects(p, side)
    obj_z = torch.where(cover, p["obj_z"][..., None, None], torch.full_like(tex, math.inf))
    zmin, slot = obj_z.min(1)
    on_obj = torch.isfinite(zmin)
    label = torch.where(on_obj, 3 + slot, label)
    z = torch.where(on_obj, zmin, z)
    obj_rgb = p["obj_rgb"][torch.arange(len(slot))[:, None, None], slot].permute(0, 3, 1, 2)
    obj_tex = tex.gather(1, slot[:, None])
    rgb = torch.where(on_obj[:, None], obj_rgb * obj_tex, rgb)
    rgb = rgb + 0.02 * torch.randn(rgb.shape, generator=gen)
    x = (rgb.clamp(0, 1) * 255).round().to(torch.uint8)
    ys = (torch.arange(side) + 0.5)[None, :, None] - p["horizon"][:, None, None]
    xs = (torch.arange(side) + 0.5)[None, None, :] - side / 2
    dist = z * torch.sqrt(1 + (xs**2 + ys**2) / side**2)  # z-depth -> Euclidean distance
    depth = torch.where(torch.isfinite(dist) & (dist <= MAX_DEPTH), dist,
                        torch.full_like(dist, MISSING_DEPTH))
    segment = torch.where(_uncertain(label), UNCERTAIN, label).to(torch.uint8)
    return {"x": x, "scene": p["scene"].long(), "segment": segment,
            "depth": depth[:, None].float(), "keypoints": heat.float()}


@register_multitask_dataset(
    "scenes",
    description="procedural scenes, 3xSxS (S=64): scene class (4), segmentation (6), "
    "depth (m), 3 keypoint heat maps; 2000/500 (no files)",
    splits=_SPLITS,
    # measured in docs/multitask.md §5 (benchmarks/multitask_scenes.py): flips move the dense
    # targets with the image, so they are the only augmentation
    recipe={"batch_size": 64, "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4,
            "schedule": "cosine", "augment": "flip", "epochs": 10},
    probe={"n": 4},
)
def scenes(root: Path | None, split: str, *, n: int | None = None, image_size: int = 64,
           data_seed: int = 0) -> MultiTaskSet:
    """Generate ``n`` scenes (default 2000 train / 500 test) of side ``image_size`` (>= 16)."""
    count = _DEFAULT_N[split] if n is None else int(n)
    if count < 1 or image_size < 16:
        raise ConfigError(f"scenes: need n >= 1 and image_size >= 16, got {count}, {image_size}")
    gen = torch.Generator().manual_seed(derive_seed(data_seed, 1, _SPLITS.index(split)))
    params = _draw(count, image_size, gen)
    # render in chunks: the per-slot maps are N x 3 x S x S floats
    chunks = [render({k: v[i : i + _CHUNK] for k, v in params.items()}, image_size, gen)
              for i in range(0, count, _CHUNK)]
    out = {k: torch.cat([c[k] for c in chunks]) for k in chunks[0]}
    x = out.pop("x")
    return MultiTaskSet(x, out, scene_tasks(), "scenes",
                        {"source": f"procedural scenes (data_seed {data_seed}, split {split})"})
