"""Class-folder image trees (``<split>/<class>/<image>``, folders or tar archive); ImageNet-100.

The tree helpers here (listing, decoding to RGB uint8, reading a train/test tree or archive) also
serve the CIFAR image-copy loader in :mod:`uebench.data.cifar`. ImageNet-100 follows the paper:
the first 100 class folders (sorted synset ids) of an ImageNet ``ImageFolder`` tree, each image's
shorter side resized to 224 and centre-cropped to 224 x 224 (torchvision ``Resize(224)`` +
``CenterCrop(224)``, bilinear).
"""

from __future__ import annotations

import io
import os
import tarfile
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from uebench.data import recipes
from uebench.data.base import ImageSet, find_files, register_dataset
from uebench.errors import DataNotFoundError, UebenchError

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".gif", ".webp", ".tif", ".tiff"}
)
IMAGENET_CLASSES = 100
IMAGENET_SIZE = 224
IMAGENET_SEED = 0
FRACTION_ENV = "UEBENCH_IMAGENET_FRACTION"

_IMAGENET_HOW = (
    "not downloadable automatically (ImageNet licence). Put an ImageFolder tree at "
    "<data-dir>/imagenet100/train/<wnid>/*.JPEG and <data-dir>/imagenet100/val/<wnid>/*.JPEG "
    "(e.g. TerryLoveMl/ImageNet-100-datasets, or the first 100 ILSVRC-2012 classes)"
)


def is_image_name(name: str) -> bool:
    """True for a visible file with an image suffix (skips ``.DS_Store``, READMEs, label files)."""
    base = os.path.basename(name)
    return not base.startswith(".") and os.path.splitext(base)[1].lower() in IMAGE_SUFFIXES


def list_class_images(split_dir: Path) -> dict[str, list[Path]]:
    """``{class_name: sorted image paths}`` for every visible sub-folder, classes sorted by name."""
    classes = sorted(p.name for p in Path(split_dir).iterdir() if p.is_dir() and p.name[0] != ".")
    return {
        c: sorted(p for p in (split_dir / c).iterdir() if p.is_file() and is_image_name(p.name))
        for c in classes
    }


def resize_center_crop(im: Image.Image, size: int) -> Image.Image:
    """Shorter side to ``size`` (bilinear, antialiased), then the central ``size x size`` square."""
    w, h = im.size
    if (w, h) != (size, size):
        # torchvision's Resize(int): the long side is truncated, not rounded
        new = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
        im = im.resize(new, Image.Resampling.BILINEAR)
        w, h = im.size
    left, top = int(round((w - size) / 2.0)), int(round((h - size) / 2.0))
    return im.crop((left, top, left + size, top + size))


def decode_rgb(source: Path | bytes, *, name: str = "", size: int | None = None) -> np.ndarray:
    """Decode one image to RGB uint8 ``H x W x 3`` (greyscale, palette, CMYK, alpha converted).

    Args:
        source: a file path or the file's bytes.
        name: how to name the image in an error message (defaults to the path).
        size: if given, resize the shorter side to ``size`` and centre-crop ``size x size``.

    Raises:
        UebenchError: the file is not a readable image.
    """
    label = name or str(source if isinstance(source, Path) else "<bytes>")
    try:
        handle = io.BytesIO(source) if isinstance(source, bytes) else source
        with Image.open(handle) as im:
            rgb = im if im.mode == "RGB" else im.convert("RGB")
            if size is not None:
                rgb = resize_center_crop(rgb, size)
            return np.asarray(rgb, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise UebenchError(f"{label}: cannot decode image ({err}); the file is corrupt.") from None


# ----------------------------------------------------------------------------------------------
# train/<class>/* + test/<class>/* trees, as folders or one tar(.gz) archive (CIFAR image copies)
# ----------------------------------------------------------------------------------------------

_SPLITS = ("train", "test")
_JPEG_BASE_SUM = 3688  # sum of the standard JPEG luminance table (quality 50)

TreeSplit = tuple[np.ndarray, np.ndarray, tuple[str, ...], str]


def shared_data_dirs() -> list[Path]:
    """The project's shared data folder: ``../shared/data`` from the CWD and from this checkout."""
    here = Path(__file__).resolve()  # <repo>/src/uebench/data/imagenet.py
    dirs = [Path("../shared/data").resolve()]
    if len(here.parents) > 4:
        dirs.append(here.parents[4] / "shared" / "data")
    return list(dict.fromkeys(dirs))


def _archive_items(path: Path) -> Iterator[tuple[str, str, str, bytes]]:
    """``(split, class, file name, bytes)`` per image of a tar archive (one top folder allowed)."""
    try:
        with tarfile.open(path, "r|*") as tar:  # streaming: one sequential pass over the gzip
            for member in tar:
                parts = [p for p in PurePosixPath(member.name).parts if p not in ("", ".")]
                if (member.isfile() and is_image_name(member.name) and len(parts) in (3, 4)
                        and parts[-3] in _SPLITS):
                    handle = tar.extractfile(member)
                    if handle is not None:
                        yield parts[-3], parts[-2], parts[-1], handle.read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise UebenchError(
            f"{path}: cannot read the archive ({err}); it is not a tar(.gz) or it is truncated. "
            "Copy it again (the shared copy's sha256 is in ../shared/data/SHA256SUMS)."
        ) from None


def _folder_items(path: Path) -> Iterator[tuple[str, str, str, Path]]:
    for split in _SPLITS:
        for cls, files in list_class_images(path / split).items():
            for file in files:
                yield split, cls, file.name, file


def _describe_format(source: Path | bytes) -> str:
    """``'JPEG q75 re-encode'``, ``'PNG'`` ...: the first image's format, for ``meta['source']``."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
            tables = getattr(im, "quantization", None)
            if im.format != "JPEG" or not tables:
                return str(im.format)
            # libjpeg scales the standard table: table = base * s / 100, s = 200 - 2q (q >= 50)
            scale = 100.0 * sum(tables[0]) / _JPEG_BASE_SUM
            quality = round((200.0 - scale) / 2.0 if scale <= 100 else 5000.0 / scale)
            return f"JPEG q{quality} re-encode"
    except (UnidentifiedImageError, OSError, ValueError):
        return "unknown-format"  # decode_rgb reports the broken file properly


def decode_tree(path: Path, expect: tuple[int, int] | None = None) -> dict[str, TreeSplit]:
    """Decode every image of a ``train/<class>/*`` + ``test/<class>/*`` folder tree or tar archive.

    Args:
        path: the tree's folder, or a tar / tar.gz file (entries may sit under one top folder).
        expect: required ``(H, W)`` of every image (no resizing happens here).

    Returns:
        ``{"train": split, "test": split}``, each ``(x uint8 N x 3 x H x W, y int64, classes,
        source)``; classes are the sorted class-folder names, images sorted by file name.
    """
    items = _archive_items(path) if path.is_file() else _folder_items(path)
    found: dict[str, dict[str, list[tuple[str, np.ndarray]]]] = {s: {} for s in _SPLITS}
    kind = ""
    for split, cls, name, src in items:
        kind = kind or _describe_format(src)
        image = decode_rgb(src, name=f"{path}: {split}/{cls}/{name}")
        if expect is not None and image.shape[:2] != expect:
            raise UebenchError(f"{path}: {split}/{cls}/{name} is {image.shape[:2]}, not {expect}")
        found[split].setdefault(cls, []).append((name, image))
    classes = tuple(sorted(found["train"]))
    if not classes or sorted(found["test"]) != list(classes):
        raise UebenchError(
            f"{path}: expected train/<class>/ and test/<class>/ images with the same classes; "
            f"found train {sorted(found['train'])[:5]}, test {sorted(found['test'])[:5]}"
        )
    source = f"{kind} {'archive' if path.is_file() else 'folders'} {path}"
    out: dict[str, TreeSplit] = {}
    for split in _SPLITS:
        # sort by file name inside each class, so the order never depends on tar member order
        ordered = [(i, img) for i, c in enumerate(classes)
                   for _, img in sorted(found[split][c], key=lambda t: t[0])]
        x = np.stack([img for _, img in ordered]).transpose(0, 3, 1, 2)
        y = np.array([i for i, _ in ordered], dtype=np.int64)
        out[split] = (np.ascontiguousarray(x), y, classes, source)
    return out


def _fraction() -> float:
    raw = os.environ.get(FRACTION_ENV, "1.0")
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0.0 < value <= 1.0:
        raise UebenchError(f"{FRACTION_ENV}={raw!r}: must be a number in (0, 1]")
    return value


def _per_class_subset(files: list[Path], fraction: float, class_index: int) -> list[Path]:
    """A seeded ``fraction`` of one class's files, kept in sorted order (at least one file)."""
    if fraction >= 1.0:
        return files
    k = max(1, int(round(fraction * len(files))))
    # one generator per class: adding or removing a class does not reshuffle the others
    rng = np.random.default_rng([IMAGENET_SEED, class_index])
    return [files[i] for i in sorted(rng.choice(len(files), size=k, replace=False))]


def _find_imagenet(root: Path | None) -> tuple[Path, str]:
    """Dataset folder and the name of its evaluation split (``val`` preferred over ``test``)."""
    candidates = ("imagenet100", "imagenet-100", "ImageNet100", "")
    try:
        return find_files("imagenet100", root, candidates, ("train", "val"),
                          how_to_get=_IMAGENET_HOW), "val"
    except DataNotFoundError as val_err:
        try:
            return find_files("imagenet100", root, candidates, ("train", "test"),
                              how_to_get=_IMAGENET_HOW), "test"
        except DataNotFoundError:
            raise DataNotFoundError(f"{val_err}\n(test/ instead of val/ works too.)") from None


@register_dataset(
    "imagenet100", recipe=recipes.IMAGENET,
    description="first 100 ImageNet classes, 3x224x224 (resize 224 + centre crop); "
    f"${FRACTION_ENV} keeps a seeded fraction of each training class",
    files="imagenet100/train/<wnid>/*.JPEG, imagenet100/val/<wnid>/*.JPEG (or test/)",
    how_to_get=_IMAGENET_HOW,
)
def imagenet100(root: Path | None, train: bool) -> ImageSet:
    """ImageNet-100 train or val split as uint8 3 x 224 x 224.

    Memory: 147 KB per image, so the full ~126k training images need about 19 GB; set
    ``UEBENCH_IMAGENET_FRACTION`` (e.g. 0.2, as APBench) to keep a seeded per-class subset of the
    training split. The evaluation split is always loaded whole (50 images per class).
    """
    folder, eval_name = _find_imagenet(root)
    classes = sorted(p.name for p in (folder / "train").iterdir() if p.is_dir()
                     and p.name[0] != ".")[:IMAGENET_CLASSES]
    if not classes:
        raise UebenchError(f"{folder / 'train'}: no class folders; expected train/<wnid>/*.JPEG")
    split_dir = folder / ("train" if train else eval_name)
    fraction = _fraction() if train else 1.0
    paths: list[Path] = []
    labels: list[int] = []
    for index, cls in enumerate(classes):
        if not (split_dir / cls).is_dir():
            raise UebenchError(f"{split_dir}: class folder {cls} is missing (it exists in train/)")
        files = [p for p in sorted((split_dir / cls).iterdir()) if is_image_name(p.name)]
        if not files:
            raise UebenchError(f"{split_dir / cls}: no images")
        files = _per_class_subset(files, fraction, index)
        paths.extend(files)
        labels.extend([index] * len(files))
    # PIL releases the GIL while decoding and resizing, so threads give a real speed-up here
    workers = min(8, os.cpu_count() or 1)
    out = np.empty((len(paths), 3, IMAGENET_SIZE, IMAGENET_SIZE), dtype=np.uint8)

    def fill(i: int) -> None:
        out[i] = decode_rgb(paths[i], size=IMAGENET_SIZE).transpose(2, 0, 1)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(fill, range(len(paths))))
    return ImageSet(
        torch.from_numpy(out),
        torch.tensor(labels, dtype=torch.int64),
        tuple(classes),
        "imagenet100",
        {"source": f"imagenet100 ({split_dir}, {len(classes)} classes, fraction {fraction:g}, "
                   f"resize {IMAGENET_SIZE} + centre crop)"},
    )
