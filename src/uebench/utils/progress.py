"""Progress bars with ETA (tqdm), silenced by ``Runtime.progress=False`` or UEBENCH_NO_PROGRESS."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(iterable: Iterable[T], *, enabled: bool = True, **kwargs: Any) -> Iterator[T]:
    """Wrap an iterable in a tqdm bar (to stderr) when enabled and not silenced by env."""
    if not enabled or os.environ.get("UEBENCH_NO_PROGRESS"):
        yield from iterable
        return
    _defaults(kwargs)
    yield from tqdm(iterable, **kwargs)


def bar(total: int, *, enabled: bool = True, **kwargs: Any) -> tqdm:
    """A manual tqdm bar; disabled bars are no-ops."""
    _defaults(kwargs)
    disable = (not enabled) or bool(os.environ.get("UEBENCH_NO_PROGRESS"))
    return tqdm(total=total, disable=disable, **kwargs)


def _defaults(kwargs: dict[str, Any]) -> None:
    kwargs.setdefault("leave", False)
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("file", sys.stderr)
    if not sys.stderr.isatty():  # logs and CI: an occasional line, not hundreds of redraws
        kwargs.setdefault("mininterval", 30.0)
