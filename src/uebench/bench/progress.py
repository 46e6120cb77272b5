"""One progress view for a whole grid: a bar over its jobs, a line per finished job, and
``OUT/<grid>/progress.json`` (rewritten atomically on every change) for another terminal or a
dashboard: ``watch cat OUT/<grid>/progress.json``."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from uebench.bench.graph import Job
from uebench.utils.io import write_json
from uebench.utils.progress import bar

FINAL = ("built", "cached", "failed", "skipped")


class GridProgress:
    """Tracks every job's state: pending -> running -> built | cached | failed | skipped."""

    def __init__(self, jobs: Sequence[Job], *, path: Path | None = None,
                 enabled: bool = True, echo: bool = True) -> None:
        self.jobs = {j.key: j for j in jobs}
        self.state = {j.key: "pending" for j in jobs}
        self.detail: dict[str, dict[str, Any]] = {}
        self.path, self.echo, self.t0 = path, echo and enabled, time.time()
        self.bar = bar(len(jobs), enabled=enabled, desc="grid", unit="job", leave=True)
        self._save()

    def counts(self) -> dict[str, int]:
        return dict(Counter(self.state.values()))

    def started(self, key: str) -> None:
        self.state[key] = "running"
        self._refresh()

    def finished(self, key: str, status: str, **detail: Any) -> None:
        """Record a final state (``built``, ``cached``, ``failed``, ``skipped``) of one job."""
        assert status in FINAL, status
        self.state[key] = status
        self.detail[key] = dict(detail)
        self.bar.update(1)
        if self.echo:
            done = sum(s in FINAL for s in self.state.values())
            seconds = detail.get("seconds")
            took = f" {seconds:.1f}s" if isinstance(seconds, (int, float)) else ""
            error = f": {detail['error']}" if detail.get("error") else ""
            tries = f" (attempt {detail['attempts']})" if detail.get("attempts", 1) > 1 else ""
            self.bar.write(f"[{done}/{len(self.state)}] {status:<7} {self.jobs[key].label}"
                           f"{took}{tries}{error}", file=sys.stderr)
        self._refresh()

    def _refresh(self) -> None:
        self.bar.set_postfix(self.counts(), refresh=False)
        self._save()

    def _save(self) -> None:
        if self.path is None:
            return
        write_json(self.path, {
            "elapsed_seconds": round(time.time() - self.t0, 1), "counts": self.counts(),
            "jobs": [{"key": k, "kind": self.jobs[k].kind, "label": self.jobs[k].label,
                      "state": s, **self.detail.get(k, {})} for k, s in self.state.items()],
        })

    def close(self) -> None:
        self.bar.close()

    def failures(self) -> Mapping[str, str]:
        return {k: str(self.detail.get(k, {}).get("error", s)) for k, s in self.state.items()
                if s in ("failed", "skipped")}
