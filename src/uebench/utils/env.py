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


# the instruction sets that decide whether bf16 (autocast, channels_last) is faster than fp32 on
# a CPU: without them bf16 is emulated and several times slower (benchmarks/README.md, section 1)
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_model(cpuinfo: str | None = None) -> dict[str, Any]:
    """The CPU's model name and which bf16 instruction sets it has, from ``/proc/cpuinfo``
    (empty where that file does not exist): development machines differ between sessions, and
    timings (and the last digits of some results) differ with them."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return {}
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    flags = set(fields.get("flags", "").split())
    return {"cpu": fields.get("model name"), "bf16_flags": [f for f in BF16_FLAGS if f in flags]}


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
        **cpu_model(),  # machines differ between sessions; results' last digits with them
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
