"""Taskonomy files on disk: the official split CSVs, the two folder trees, the file names.

Facts from the dataset's README (StanfordVL/taskonomy, ``data/README.md``) and its split archive
``data/assets/splits_taskonomy.zip``:

- Split files ``splits_taskonomy/train_val_test_<partition>.csv`` for the partitions ``tiny``
  (25 / 5 / 5 buildings), ``medium``, ``full`` and ``fullplus``: a header ``id,train,val,test``,
  then one row per building with a ``1`` in its split's column. The official files end their lines
  with a bare carriage return (classic Mac), which :func:`parse_split_csv` accepts along with
  ``\\n`` and ``\\r\\n``. The zip itself may be given instead of the CSV.
- Images: ``point_<p>_view_<v>_domain_<domain>.<ext>``; (point, view) is the key that joins the
  tasks of one image. The domain suffix is not always the folder name (:data:`DOMAINS`).
- Two trees: the original ``<root>/<building>/<folder>/<file>`` and the one the omnidata download
  tool writes, ``<root>/<folder>/taskonomy/<building>/<file>``. Both are searched, per building.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from uebench.data.base import data_roots
from uebench.errors import DataNotFoundError, UebenchError

PARTITIONS = ("tiny", "medium", "full", "fullplus")
SPLIT_COLUMNS = ("train", "val", "test")
SPLIT_ZIP = "splits_taskonomy.zip"
SPLIT_URL = "https://github.com/StanfordVL/taskonomy/raw/master/data/assets/splits_taskonomy.zip"
CANDIDATES = ("taskonomy", "taskonomy_tiny", "omnidata_taskonomy", "")
HOW_TO_GET = (
    "download the images with the omnidata tool (pip install omnidata-tools; omnitools.download "
    "rgb class_scene segment_semantic depth_euclidean keypoints2d --components taskonomy "
    f"--subset tiny --dest DIR) and put the official split archive {SPLIT_URL} in DIR"
)
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")  # building names become path parts: no separators
_RGB = re.compile(r"^point_(\d+)_view_(\d+)_domain_rgb\.png$")


@dataclass(frozen=True)
class Domain:
    """Where one task's files live: folder name, file-name domain suffix, extension."""

    folder: str
    suffix: str
    ext: str

    def file(self, directory: Path, point: str, view: str) -> Path:
        return directory / f"point_{point}_view_{view}_domain_{self.suffix}.{self.ext}"


DOMAINS = {
    "rgb": Domain("rgb", "rgb", "png"),
    "class_scene": Domain("class_scene", "class_places", "npy"),
    "segment_semantic": Domain("segment_semantic", "segmentsemantic", "png"),
    "depth_euclidean": Domain("depth_euclidean", "depth_euclidean", "png"),
    "keypoints2d": Domain("keypoints2d", "keypoints2d", "png"),
}


def split_file_name(partition: str) -> str:
    if partition not in PARTITIONS:
        raise UebenchError(
            f"taskonomy: unknown partition '{partition}'; valid: {', '.join(PARTITIONS)}"
        )
    return f"train_val_test_{partition}.csv"


def parse_split_csv(text: str, source: str) -> dict[str, list[str]]:
    """``{train|val|test: [building, ...]}`` from an official split CSV (file order kept)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or [c.strip() for c in lines[0].split(",")] != ["id", *SPLIT_COLUMNS]:
        raise UebenchError(f"{source}: not a Taskonomy split file (header 'id,train,val,test')")
    out: dict[str, list[str]] = {s: [] for s in SPLIT_COLUMNS}
    for number, line in enumerate(lines[1:], start=2):
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != 4 or not _NAME.match(cells[0]) or any(c not in "01" for c in cells[1:]):
            raise UebenchError(f"{source}, line {number}: malformed row {line!r}")
        for split, flag in zip(SPLIT_COLUMNS, cells[1:]):
            if flag == "1":
                out[split].append(cells[0])
    return out


def _read_split(folder: Path, name: str) -> tuple[str, str] | None:
    for path in (folder / "splits_taskonomy" / name, folder / name):
        if path.is_file():
            return path.read_text(encoding="utf-8"), str(path)
    archive = folder / SPLIT_ZIP
    if archive.is_file():
        with zipfile.ZipFile(archive) as zf:  # reading one member by name: no path traversal
            if f"splits_taskonomy/{name}" in zf.namelist():
                return zf.read(f"splits_taskonomy/{name}").decode("utf-8"), f"{archive}:{name}"
    return None


def find_split(root: Path | None, partition: str) -> tuple[Path, dict[str, list[str]]]:
    """The dataset folder (the first one holding the partition's split file) and its splits."""
    name = split_file_name(partition)
    looked = []
    for base in data_roots(root):
        for cand in CANDIDATES:
            folder = base / cand if cand else base
            looked.append(folder)
            found = _read_split(folder, name)
            if found is not None:
                return folder, parse_split_csv(*found)
    where = "\n  ".join(str(p) for p in dict.fromkeys(looked))
    raise DataNotFoundError(
        f"taskonomy: no {name} (or splits_taskonomy/{name}, or {SPLIT_ZIP}). Looked in:\n  "
        f"{where}\nHow to get it: {HOW_TO_GET}.\nThen pass --data-dir DIR (or set UEBENCH_DATA)."
    )


def task_dir(root: Path, building: str, domain: Domain) -> Path | None:
    """A building's folder for one task, in either tree (None if absent)."""
    for folder in (root / building / domain.folder, root / domain.folder / "taskonomy" / building):
        if folder.is_dir():
            return folder
    return None


def list_views(rgb_dir: Path) -> list[tuple[str, str]]:
    """(point, view) of every RGB image in a folder, in numeric order."""
    keys = [m.groups() for m in (_RGB.match(p.name) for p in rgb_dir.iterdir()) if m]
    return sorted(keys, key=lambda k: (int(k[0]), int(k[1])))
