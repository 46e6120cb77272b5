"""One progress view for a whole grid: a bar over its jobs, a line per finished job, and
``OUT/<grid>/progress.json`` (rewritten atomically on every change) for another terminal or a
dashboard: ``watch cat OUT/<grid>/progress.json``.

The file says who writes it (``pid``, ``host``, ``updated``) and whether the process ended
(``ended``: every job final, or stopped by an error or a signal, which the jobs still pending
show; those that were running then say ``interrupted`` and resume from their checkpoints).
``ended: false`` with the process gone is a killed grid, not a running one: run the command again
to resume. ``eta_seconds`` is the work left over the workers: each unfinished job's estimate
(``--dry-run``'s, :mod:`uebench.bench.cost`; else the mean time of this run's finished jobs of its
kind) less the time a running job has had, summed and divided by the number of workers;
``eta_unknown_jobs`` counts the jobs without any estimate (left out of the sum)."""

from __future__ import annotations

import datetime
import os
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from uebench.bench.graph import Job
from uebench.utils.io import write_json
from uebench.utils.progress import bar, duration

FINAL = ("built", "cached", "failed", "skipped")
OPEN = ("pending", "running", "interrupted")  # interrupted: running when the process stopped


class GridProgress:
    """Tracks every job's state: pending -> running -> built | cached | failed | skipped (or
    interrupted, when the process stops while the job runs)."""

    def __init__(self, jobs: Sequence[Job], *, path: Path | None = None,
                 enabled: bool = True, echo: bool = True,
                 estimates: Mapping[str, float | None] | None = None, parallel: int = 1,
                 clock: Callable[[], float] = time.time) -> None:
        self.jobs = {j.key: j for j in jobs}
        self.state = {j.key: "pending" for j in jobs}
        self.detail: dict[str, dict[str, Any]] = {}
        self.estimates = dict(estimates or {})
        self.parallel, self.clock = max(1, int(parallel)), clock
        self.began: dict[str, float] = {}
        self.ended = False
        self.path, self.echo, self.t0 = path, echo and enabled, clock()
        self.bar = bar(len(jobs), enabled=enabled, desc="grid", unit="job", leave=True)
        self._save()

    def counts(self) -> dict[str, int]:
        return dict(Counter(self.state.values()))

    def started(self, key: str) -> None:
        self.state[key] = "running"
        self.began[key] = self.clock()
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
            eta, _ = self.eta()
            left = f" · about {duration(eta)} left" if eta and done < len(self.state) else ""
            self.bar.write(f"[{done}/{len(self.state)}] {status:<7} {self.jobs[key].label}"
                           f"{took}{tries}{error}{left}", file=sys.stderr)
        self._refresh()

    def _refresh(self) -> None:
        self.bar.set_postfix(self.counts(), refresh=False)
        self._save()

    def eta(self) -> tuple[float | None, int]:
        """(seconds of work left over the workers: 0 when every job is final, None when no
        unfinished job has an estimate; the number of unfinished jobs without one)."""
        took: dict[str, list[float]] = {}
        for key, state in self.state.items():
            seconds = self.detail.get(key, {}).get("seconds")
            if state == "built" and isinstance(seconds, (int, float)):
                took.setdefault(self.jobs[key].kind, []).append(float(seconds))
        now, left, unknown, known, open_jobs = self.clock(), 0.0, 0, False, 0
        for key, state in self.state.items():
            if state not in OPEN:
                continue
            open_jobs += 1
            guess = self.estimates.get(key)
            if guess is None and took.get(self.jobs[key].kind):
                runs = took[self.jobs[key].kind]
                guess = sum(runs) / len(runs)
            if guess is None:
                unknown += 1
                continue
            known = True
            left += max(0.0, guess - (now - self.began[key] if state == "running" else 0.0))
        return (left / self.parallel if known or not open_jobs else None), unknown

    def _save(self) -> None:
        if self.path is None:
            return
        eta, unknown = self.eta()
        write_json(self.path, {
            "elapsed_seconds": round(self.clock() - self.t0, 1), "counts": self.counts(),
            "ended": self.ended,
            "eta_seconds": None if eta is None else round(eta, 1), "eta_unknown_jobs": unknown,
            "updated": datetime.datetime.fromtimestamp(self.clock(), datetime.timezone.utc)
            .isoformat(timespec="seconds"),
            "pid": os.getpid(), "host": socket.gethostname(),
            "jobs": [{"key": k, "kind": self.jobs[k].kind, "label": self.jobs[k].label,
                      "state": s, **self.detail.get(k, {})} for k, s in self.state.items()],
        })

    def close(self) -> None:
        """The run ended (every job final, or stopped by an error or a signal: the jobs that
        were running then are marked ``interrupted``; they resume from their checkpoints)."""
        for key, state in self.state.items():
            if state == "running":
                self.state[key] = "interrupted"
        self.ended = True
        self._save()
        self.bar.close()

    def failures(self) -> Mapping[str, str]:
        return {k: str(self.detail.get(k, {}).get("error", s)) for k, s in self.state.items()
                if s in ("failed", "skipped")}
