"""User-facing errors: the CLI prints their message and exits non-zero without a traceback."""


class UebenchError(Exception):
    """A problem with the user's input or environment. The message names the problem and the fix."""


class UnknownNameError(UebenchError, KeyError):
    """An unknown registry name (dataset, model, attack, ...)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataNotFoundError(UebenchError, FileNotFoundError):
    """Dataset files are missing; the message lists where we looked and how to get them."""


class ConfigError(UebenchError, ValueError):
    """An unknown key, a wrong type or an invalid value in a config or override."""


class PoisonValidationError(UebenchError, ValueError):
    """A stored poison does not match the clean data or violates its declared budget."""


class Terminated(KeyboardInterrupt):
    """The process was asked to stop (SIGTERM). A KeyboardInterrupt, so every clean-up path
    that handles Ctrl-C (locks released, partial files removed) handles it the same way."""

    def __init__(self, signal_name: str = "SIGTERM") -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


# what torch.save raises (a RuntimeError, no errno) when the file system refuses a write
_TORCH_WRITE_FAILED = ("unexpected pos", "file write failed", "failed writing file")


def is_torch_write_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is torch's RuntimeError for a write the file system refused (in practice a
    full disk: ``PytorchStreamWriter failed writing file ...`` / ``unexpected pos N vs M``)."""
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(s in text for s in _TORCH_WRITE_FAILED)


def describe_unexpected(exc: BaseException) -> str:
    """A one-line message naming the problem and the fix for errors the sources did not foresee.

    The CLI's last line of defence: file-system errors become "what, where, what to do"; anything
    else keeps its own message plus how to get the traceback.
    """
    import errno

    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        what = exc.strerror or str(exc)
        fixes = {
            errno.ENOSPC: "the disk is full: free some space or choose --out elsewhere, then "
                          "re-run the same command (finished epochs and poison work resume)",
            errno.EDQUOT: "the disk quota is exceeded: free some space and re-run",
            errno.EROFS: "the file system is read-only: choose a writable --out directory",
            errno.EACCES: "permission denied: choose a directory you can write, or fix its "
                          "permissions",
            errno.EPERM: "operation not permitted: choose another directory",
            errno.ENOENT: "a file or directory does not exist: check the path",
            errno.EISDIR: "a directory is where a file is expected: check the path",
            errno.ENOTDIR: "a file is where a directory is expected (e.g. --out points at a "
                           "file): choose another path",
            errno.ENAMETOOLONG: "a path is too long: use a shorter --out",
        }
        fix = fixes.get(exc.errno or -1, "check the path and re-run")
        return f"{what}{where}: {fix}"
    if is_torch_write_failure(exc):  # torch.save on a full disk: no errno, only its position
        return describe_unexpected(OSError(errno.ENOSPC, "No space left on device"))
    if isinstance(exc, MemoryError):
        return ("out of memory: use a smaller --train-size, batch size or model width, or a "
                "machine with more memory")
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{type(exc).__name__}: {text} (unexpected; set UEBENCH_DEBUG=1 for the traceback)"


class TimeBudgetReached(UebenchError):
    """A time budget (:func:`uebench.runtime.time_budget`) ran out at a resumable point: what
    finished is stored, and the same call resumes from there."""
