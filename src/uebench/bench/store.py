"""Content-addressed store of poisons and training runs, safe under concurrent workers and grids.

Every job has a **key**: the sha256 of the canonical JSON of its resolved spec (a training run's
full ``RunCfg`` dict, with its poison referenced by the poison's own key or content hash, never
by a path; a poison's attack, preset, resolved parameters and clean subset). Equal settings give
equal keys, so a poison or a clean run is computed once and reused by every grid that needs it;
a setting that changes the result changes the key. Layout::

    STORE/poisons/<key16>/            a poison directory (uebench.poisons format)
    STORE/poisons/<key16>.spec.json   the full key and the spec it was made from
    STORE/runs/<key16>/               a run directory (config.yaml ... summary.json)
    STORE/runs/<key16>.spec.json
    STORE/.locks/<kind>-<key16>.lock  who is building it (an flock, released when its process dies)

Completion markers are the existing ones (``manifest.json`` of a poison, ``summary.json`` of a
run): both are written atomically and last. Concurrency: a job builds its key inside
:meth:`Store.building`, an exclusive ``flock`` on the key's lock file. A second worker (or a second
grid on the same store) that needs the same key blocks there until the first one finishes, then
finds the completion marker and reuses the result. The lock dies with its process (a killed worker
never leaves a key locked), and the resumable run/poison directories make the retry continue where
the killed worker stopped. ``flock`` is per host; on a multi-node Ray cluster the store must be
on a shared file system whose locks are cluster-wide (NFSv4, Lustre with ``flock``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from uebench.errors import UebenchError
from uebench.train import rundir
from uebench.utils.io import read_json, write_json

STORE_FORMAT = 1
KEY_CHARS = 16  # directory names: 64 bits of the sha256 (the full key is checked on reuse)
KINDS = {"poison": "poisons", "train": "runs"}
MARKERS = {"poison": "manifest.json", "train": rundir.SUMMARY}


def canonical_json(obj: Any) -> str:
    """The one serialisation keys are computed from: sorted keys, no whitespace, strict floats."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def job_key(kind: str, spec: Mapping[str, Any]) -> str:
    """sha256 (hex) of ``{"kind", "format", "spec"}`` in canonical JSON."""
    blob = canonical_json({"kind": kind, "format": STORE_FORMAT, "spec": dict(spec)})
    return hashlib.sha256(blob.encode()).hexdigest()


class Store:
    """A directory of poisons and runs addressed by job keys (see the module docstring)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()

    def path(self, kind: str, key: str) -> Path:
        """Where the job with this key lives (it may not exist yet)."""
        if kind not in KINDS:
            raise UebenchError(f"unknown store kind {kind!r}; kinds: {', '.join(KINDS)}")
        return self.root / KINDS[kind] / key[:KEY_CHARS]

    def spec_path(self, kind: str, key: str) -> Path:
        return self.path(kind, key).with_suffix(".spec.json")

    def is_complete(self, kind: str, key: str) -> bool:
        return (self.path(kind, key) / MARKERS[kind]).is_file()

    def key_of(self, kind: str, path: Path | str) -> str | None:
        """The full key of a complete entry of this store at ``path`` (None: not one of ours)."""
        path = Path(path).resolve()
        if path.parent != self.root / KINDS[kind] or not path.with_suffix(".spec.json").is_file():
            return None
        stored = read_json(path.with_suffix(".spec.json"))
        key = stored.get("key") if isinstance(stored, dict) else None
        if not isinstance(key, str) or key[:KEY_CHARS] != path.name:
            return None
        return key if self.is_complete(kind, key) else None

    def record(self, kind: str, key: str, spec: Mapping[str, Any]) -> None:
        """Write the key's spec file once (atomically); a different full key there is refused."""
        path = self.spec_path(kind, key)
        if path.is_file():
            stored = read_json(path)
            if not isinstance(stored, dict) or stored.get("key") != key:
                raise UebenchError(
                    f"{path} belongs to another job (a {KEY_CHARS}-character key prefix "
                    "collision or an edited file); move that entry out of the store and re-run")
            return
        write_json(path, {"key": key, "kind": kind, "format": STORE_FORMAT, "spec": dict(spec)})

    @contextlib.contextmanager
    def building(self, kind: str, key: str) -> Iterator[Path]:
        """Hold the key's exclusive lock (waiting for another holder) and yield its directory."""
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        fd = os.open(locks / f"{kind}-{key[:KEY_CHARS]}.lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # blocks while another worker builds this key
            yield self.path(kind, key)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def entries(self, kind: str) -> list[dict[str, Any]]:
        """Every recorded spec of one kind (complete or not), with ``complete`` and ``path``."""
        folder = self.root / KINDS[kind]
        out = []
        for spec_file in sorted(folder.glob("*.spec.json")) if folder.is_dir() else []:
            stored = read_json(spec_file)
            if isinstance(stored, dict) and "key" in stored:
                key = stored["key"]
                out.append({**stored, "complete": self.is_complete(kind, key),
                            "path": str(self.path(kind, key))})
        return out
