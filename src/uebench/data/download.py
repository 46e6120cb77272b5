"""Fetch official dataset files over HTTP(S), verify their checksums, unpack archives atomically.

Only ever called on a user's explicit request (``uebench download NAME`` or
``python -m uebench.data.download NAME [DIR]``): never at import time and never by tests. Files
go where the loaders look: ``DIR/<dataset folder>``, with ``DIR`` defaulting to
``~/.cache/uebench`` (always a data root, see :func:`uebench.data.base.data_roots`).

Checksums are the MD5s published with the datasets and used by torchvision's loaders (checked
against torchvision's source lists). MD5 is used for integrity against truncated or wrong files,
not as a security boundary; the pickles inside the CIFAR archives are read with a restricted
unpickler anyway.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from uebench.errors import UebenchError


@dataclass(frozen=True)
class Resource:
    """One file: where to get it (mirrors tried in order), its name and its MD5."""

    urls: tuple[str, ...]
    filename: str
    md5: str
    extract: bool = False  # a tar.gz unpacked into the dataset folder


_FASHION = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
_MNIST = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
_CIFAR = ("https://www.cs.toronto.edu/~kriz/",)
_SVHN = ("http://ufldl.stanford.edu/housenumbers/",)


def _idx(mirrors: tuple[str, ...], md5s: dict[str, str]) -> tuple[Resource, ...]:
    return tuple(Resource(tuple(m + f for m in mirrors), f, h) for f, h in md5s.items())


# dataset name -> (sub-folder of the download root, resources)
SOURCES: dict[str, tuple[str, tuple[Resource, ...]]] = {
    "fashion-mnist": ("fashion-mnist", _idx(_FASHION, {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    })),
    "mnist": ("mnist", _idx(_MNIST, {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    })),
    # the archives unpack to cifar-10-batches-py/ and cifar-100-python/, where the loader looks
    "cifar10": ("", (Resource(tuple(m + "cifar-10-python.tar.gz" for m in _CIFAR),
                              "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
                              extract=True),)),
    "cifar100": ("", (Resource(tuple(m + "cifar-100-python.tar.gz" for m in _CIFAR),
                               "cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85",
                               extract=True),)),
    "svhn": ("svhn", _idx(_SVHN, {
        "train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
        "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3",
    })),
}
DOWNLOADABLE: tuple[str, ...] = tuple(SOURCES)


def default_root() -> Path:
    return Path.home() / ".cache" / "uebench"


def md5sum(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(resource: Resource, target: Path) -> None:
    """Download to a temporary file next to ``target``, check the MD5, then rename into place."""
    errors = []
    for url in resource.urls:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        try:
            print(f"downloading {url}", file=sys.stderr)
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
                shutil.copyfileobj(response, out, 1 << 20)
            found = md5sum(Path(tmp))
            if found != resource.md5:
                errors.append(f"{url}: md5 {found}, expected {resource.md5}")
                continue
            os.replace(tmp, target)
            return
        except OSError as err:  # URLError, HTTPError and socket timeouts are OSErrors
            errors.append(f"{url}: {err}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise UebenchError(f"could not download {resource.filename}:\n  " + "\n  ".join(errors))


def _safe_members(tar: tarfile.TarFile, dest: Path) -> list[tarfile.TarInfo]:
    # fallback for Pythons without tarfile's "data" filter: no links, devices or escaping paths
    members = []
    for m in tar.getmembers():
        resolved = (dest / m.name).resolve()
        if not (m.isfile() or m.isdir()) or not resolved.is_relative_to(dest.resolve()):
            raise UebenchError(f"refusing to extract {m.name!r}: unsafe archive member")
        members.append(m)
    return members


def _extract(archive: Path, dest: Path) -> None:
    """Unpack into a temporary folder, then move each top-level entry into ``dest`` atomically."""
    tmp = Path(tempfile.mkdtemp(dir=dest, prefix=".extract."))
    try:
        with tarfile.open(archive, "r:*") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, filter="data")
            else:
                tar.extractall(tmp, members=_safe_members(tar, tmp))
        for entry in tmp.iterdir():
            final = dest / entry.name
            if final.exists():  # replacing a directory is not atomic: move the old one away first
                old = Path(tempfile.mkdtemp(dir=dest, prefix=".old."))
                os.replace(final, old / entry.name)
                shutil.rmtree(old)
            os.replace(entry, final)
    except (tarfile.TarError, EOFError) as err:
        raise UebenchError(f"{archive}: cannot unpack ({err}); delete it, fetch again.") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def download(name: str, root: Path | str | None = None, *, force: bool = False) -> Path:
    """Download dataset ``name`` (one of :data:`DOWNLOADABLE`) into ``root``.

    Args:
        name: dataset name, e.g. ``"cifar10"``.
        root: download root (default ``~/.cache/uebench``); pass the same as ``--data-dir``.
        force: fetch again even if a file with the right checksum is already there.

    Returns:
        The folder holding the files (the loaders find it from ``root``).
    """
    if name not in SOURCES:
        raise UebenchError(f"cannot download '{name}'. Downloadable: {', '.join(DOWNLOADABLE)}")
    base = Path(root).expanduser() if root is not None else default_root()
    sub, resources = SOURCES[name]
    dest = base / sub if sub else base
    dest.mkdir(parents=True, exist_ok=True)
    for res in resources:
        # archives are kept under .downloads so a re-run can skip the download, not the unpack
        target = (base / ".downloads" if res.extract else dest) / res.filename
        target.parent.mkdir(parents=True, exist_ok=True)
        if force or not target.exists() or md5sum(target) != res.md5:
            _fetch(res, target)
        if res.extract:
            _extract(target, dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    """``python -m uebench.data.download NAME [DIR]``."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in SOURCES or len(args) > 2:
        print(f"usage: python -m uebench.data.download {{{','.join(DOWNLOADABLE)}}} [DIR]",
              file=sys.stderr)
        return 2
    try:
        print(download(args[0], args[1] if len(args) > 1 else None))
    except UebenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
