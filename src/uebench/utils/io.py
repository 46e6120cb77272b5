"""Files: atomic writes (complete or absent, never half-written), strict JSON, readers that turn a
corrupt file into a message naming it and the fix, and a per-directory lock.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from uebench.errors import ConfigError, UebenchError, is_torch_write_failure


class CorruptFileError(UebenchError):
    """A file uebench wrote earlier cannot be read back (truncated, edited, wrong format)."""


def corrupt(path: Path | str, why: str = "", fix: str = "delete it and re-run") -> CorruptFileError:
    detail = f" ({why})" if why else ""
    return CorruptFileError(f"{path} is corrupt{detail}; {fix}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give: mkstemp's 0600 is not for results


def _atomic(path: Path, writer: Callable[[str], None]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        writer(tmp)
        os.chmod(tmp, _FILE_MODE)  # results are shared: readable by others as with plain open()
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())

    _atomic(path, write)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    _atomic(path, write)


def strict_json(obj: Any) -> Any:
    """``obj`` with NaN/Inf floats replaced by ``None``: the file stays strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Mapping):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """Strict JSON text (no bare NaN/Infinity, which other tools reject)."""
    return json.dumps(strict_json(json.loads(json.dumps(obj, default=_json_default))),
                      allow_nan=False, **kwargs)


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: Path) -> Any:
    """A JSON file written by uebench; a broken one raises :class:`CorruptFileError`."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise corrupt(path, f"not valid JSON: {exc}") from None


def write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Rewrite a whole JSON-lines file atomically (one object per line)."""
    text = "".join(dumps(dict(r)) + "\n" for r in rows)
    atomic_write_text(path, text)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """One object per line; missing file = no rows; a broken line raises CorruptFileError."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    number = 0
    try:
        with open(path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise corrupt(path, f"line {number} is not a JSON object")
                rows.append(row)
    except json.JSONDecodeError as exc:
        raise corrupt(path, f"line {number} is not valid JSON: {exc.msg}") from None
    except UnicodeDecodeError as exc:
        raise corrupt(path, f"not valid JSON lines: {exc}") from None
    return rows


def diff_keys(a: Any, b: Any, prefix: str = "") -> set[str]:
    """Dotted paths at which two nested mappings differ."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        out: set[str] = set()
        for k in set(a) | set(b):
            out |= diff_keys(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return set() if a == b else {prefix.rstrip(".") or "(value)"}


def refuse_if_different(where: Path | str, old: Mapping[str, Any], new: Mapping[str, Any], *,
                        what: str, fix: str = "") -> None:
    """The one "this directory already holds something else" check (runs, poisons, SAL tags).

    Raises ConfigError naming the differing keys unless ``old == new``.
    """
    if dict(old) == dict(new):
        return
    diff = ", ".join(sorted(diff_keys(old, new)))
    raise ConfigError(
        f"{where} already holds {what} with different settings (differs in: {diff}). "
        + (fix or "Use another output directory, or delete that one to start over.")
    )


def check_output_dir(path: Path | str, *, marker: str | tuple[str, ...], what: str) -> Path:
    """``path`` may be new, empty, or an earlier ``what`` (it holds a ``marker``) — nothing else.

    Refuses a file, and a non-empty directory of something else, before anything is written.
    """
    path = Path(path)
    markers = (marker,) if isinstance(marker, str) else marker
    if path.exists() and not path.is_dir():
        raise UebenchError(f"{path} is a file, not a directory: choose another output path")
    if path.is_dir() and not any((path / m).exists() for m in markers):
        foreign = [p.name for p in path.iterdir() if not p.name.startswith(".")]
        if foreign:
            shown = ", ".join(sorted(foreign)[:5]) + (" ..." if len(foreign) > 5 else "")
            raise UebenchError(
                f"{path} is not empty ({shown}) and does not hold {what}: choose a new or empty "
                "output directory (uebench never writes into a directory of other files)")
    return path


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` atomically; torch's RuntimeError for a refused write (a full disk: "unexpected
    pos", "file write failed") becomes ``OSError(ENOSPC)`` naming ``path``, as any other write."""
    def write(tmp: str) -> None:
        try:
            torch.save(obj, tmp)
        except RuntimeError as exc:
            if not is_torch_write_failure(exc):
                raise
            import errno

            raise OSError(errno.ENOSPC, "No space left on device", str(path)) from exc

    _atomic(path, write)


def safe_torch_load(path: Path, map_location: str | torch.device = "cpu") -> Any:
    """Load a checkpoint without unpickling arbitrary objects; a broken one raises
    :class:`CorruptFileError`."""
    import pickle
    import zipfile

    if not Path(path).is_file():
        raise UebenchError(f"{path} does not exist or is not a file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, RuntimeError, ValueError,
            OSError) as exc:  # a truncated zip surfaces as OSError "Invalid argument"
        why = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise corrupt(path, why) from None


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


# ----------------------------------------------------------------------------- locks


class DirectoryLock:
    """One process at a time per run / poison directory (``<dir>/.lock`` holds the owner's pid).

    A lock left by a process that no longer exists (killed, machine rebooted) is taken over; a
    live owner makes the second process stop with "in use by pid N" instead of interleaving
    writes with it.
    """

    def __init__(self, directory: Path | str) -> None:
        self.path = Path(directory) / ".lock"
        self.held = False

    def acquire(self) -> DirectoryLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner is not None and owner != os.getpid() and _alive(owner):
                    raise UebenchError(
                        f"{self.path.parent} is in use by pid {owner} (another uebench process "
                        f"works there); wait for it to finish, or stop it. If no such process "
                        f"exists, delete {self.path}") from None
                if owner == os.getpid():  # re-entrant within one process
                    return self
                self.path.unlink(missing_ok=True)  # stale: its owner is gone
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(str(os.getpid()))
            self.held = True
            return self
        raise UebenchError(f"could not lock {self.path.parent}; delete {self.path} and re-run")

    def _owner(self) -> int | None:
        try:
            return int(self.path.read_text().strip() or "0") or None
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> DirectoryLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True
