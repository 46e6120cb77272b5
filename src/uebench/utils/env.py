"""Environment record written next to every run (env.json)."""

from __future__ import annotations

import platform
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

_PACKAGES = ("torch", "numpy", "scipy", "scikit-learn", "matplotlib", "pillow", "pyyaml", "kornia")


def git_info(start: Path | None = None) -> dict[str, Any]:
    cwd = Path(start or Path(__file__).resolve().parent)
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd, capture_output=True, text=True, timeout=5,
        )
        if sha.returncode != 0:
            return {"commit": None, "dirty": None}
        return {"commit": sha.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def environment(device: torch.device | str | None = None) -> dict[str, Any]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        versions["uebench"] = metadata.version("uebench")
    except metadata.PackageNotFoundError:
        versions["uebench"] = None
    dev = torch.device(device) if device is not None else torch.device("cpu")
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "packages": versions,
        "device": str(dev),
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
        "torch_threads": torch.get_num_threads(),
        "git": git_info(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return info
