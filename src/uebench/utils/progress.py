"""Progress bars with ETA (tqdm) on a terminal, plain lines in a log; silenced by
``Runtime.progress=False`` or UEBENCH_NO_PROGRESS.

A tqdm bar redraws itself with carriage returns, which a file or a pipe keeps as fragments
(``0%|          |``) run together on one line. So when the bar's stream is not a terminal
(``make demo > log 2>&1``, CI, a batch job) it is a :class:`LineProgress` instead: one plain line
when the bar ends (an epoch, a SAL measurement, an attack's rounds), and one at most every
:data:`LINE_INTERVAL` seconds while a long one runs.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

LINE_INTERVAL = 30.0  # seconds between the lines of a bar that is still running


def progress(iterable: Iterable[T], *, enabled: bool = True, **kwargs: Any) -> Iterator[T]:
    """Iterate ``iterable`` behind a :func:`bar` (its length as the total when it has one)."""
    total = kwargs.pop("total", None)
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    with bar(total, enabled=enabled, **kwargs) as pbar:
        for item in iterable:
            yield item
            pbar.update(1)


def bar(total: int | None, *, enabled: bool = True, **kwargs: Any) -> tqdm | LineProgress:
    """A manual progress bar (``update``, ``set_postfix``, ``write``, ``close``): a tqdm bar on
    a terminal or in a notebook, a :class:`LineProgress` on any other stream; disabled bars are
    no-ops."""
    kwargs.setdefault("leave", False)
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("file", sys.stderr)
    disable = (not enabled) or bool(os.environ.get("UEBENCH_NO_PROGRESS"))
    if not disable and _plain(kwargs["file"]):
        return LineProgress(total, **kwargs)
    return tqdm(total=total, disable=disable, **kwargs)


def _plain(file: IO[str]) -> bool:
    """Whether a bar on ``file`` must be plain lines: the stream is not a terminal, and no
    notebook draws the bar as a widget (tqdm.auto then chose its console bar)."""
    from tqdm import autonotebook, std

    if autonotebook.tqdm is not std.tqdm:
        return False
    isatty = getattr(file, "isatty", None)
    return not (callable(isatty) and isatty())


class LineProgress:
    """The part of tqdm's interface that uebench uses, written as whole lines.

    ``desc: n/total unit in 3.1s (12.9 unit/s), key=value``: one line at :meth:`close`, and
    while it runs one line (with the ETA) at most every ``interval`` seconds (default
    :data:`LINE_INTERVAL`). Never a carriage
    return, so a log file reads line by line.
    """

    def __init__(self, total: int | None = None, *, desc: str | None = None, unit: str = "it",
                 initial: int = 0, file: IO[str] | None = None,
                 interval: float | None = None, **_tqdm_options: Any) -> None:
        self.total, self.desc, self.unit = total, desc or "", unit
        self.n = self.initial = initial
        self.file = sys.stderr if file is None else file
        self.interval = LINE_INTERVAL if interval is None else interval
        self.postfix = ""
        self.start = self.last = time.monotonic()
        self.closed = False

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        running = self.total is None or self.n < self.total
        if running and now - self.last >= self.interval:
            self._line(now, final=False)

    def set_postfix(self, ordered_dict: Mapping[str, Any] | None = None, refresh: bool = True,
                    **kwargs: Any) -> None:
        items = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def write(self, text: str, file: IO[str] | None = None, end: str = "\n") -> None:
        print(text, file=self.file if file is None else file, end=end, flush=True)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._line(time.monotonic(), final=True)

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _line(self, now: float, *, final: bool) -> None:
        self.last = now
        elapsed = now - self.start
        done = self.n - self.initial
        count = f"{self.n}/{self.total}" if self.total is not None else str(self.n)
        parts = [f"{self.desc}: " if self.desc else "", f"{count} {self.unit}",
                 f" in {duration(elapsed)}"]
        if done > 0 and elapsed > 0:
            rate = done / elapsed
            parts.append(f" ({rate:.3g} {self.unit}/s)" if rate >= 1
                         else f" ({duration(1 / rate)}/{self.unit})")
            if not final and self.total is not None:
                parts.append(f", about {duration((self.total - self.n) / rate)} left")
        if self.postfix:
            parts.append(f", {self.postfix}")
        self.write("".join(parts))


def duration(seconds: float) -> str:
    """A short human reading of a time span (``12.3s``, ``05:07``, ``1:02:03``)."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    return tqdm.format_interval(seconds)
