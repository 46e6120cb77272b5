"""Every learnability number read against a control: which run is whose control, and the paired
difference poison − control over seeds with its 95 % t-interval.

**Controls.** A run whose training data carries sample-wise random noise (the ``random`` attack,
not class-wise) is a *control*: its noise carries no label information. A poison is read against
the control of its budget norm (ℓ∞ noise at the same radius for EM or TAP, ℓ2 noise at LSP's
radius, random pixels for OPS); where the radii differ, the nearest. A second, independent draw of
the same noise (``draw`` ≥ 1) is read against the first: that pair is the false-positive check,
two harmless noises that must not be told apart.

**Paired inference.** Seed by seed (same initial weights, data order and test set for the poison
and its control), ``d_s = stat(poison, s) − stat(control, s)``; the mean of ``d`` with Student's
t-interval over seeds. The poison is *separated* from its control when the interval excludes 0
in the statistic's "less learnable" direction (below 0 for UD or accuracy). With one seed there
is no interval and no verdict: ``separated`` is ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from uebench.errors import UebenchError
from uebench.learnability.stats import summarize
from uebench.poisons.manifest import read_manifest

ControlKey = tuple[str, float | None, int]  # (norm, radius or pixel count, draw)


def poison_identity(config: Mapping[str, Any]) -> dict[str, Any] | None:
    """What a run trained on, from its stored config (``RunRecord.config``) and its poison's
    manifest: ``None`` for a clean run, else
    ``{attack, norm, radius, draw, control}``."""
    poison = config.get("poison")
    if not poison:
        return None
    try:
        manifest = read_manifest(Path(str(poison)))
    except UebenchError:  # poisoned, but its manifest is gone: never mistaken for a control
        return {"attack": Path(str(poison)).name, "norm": None, "radius": None, "draw": 0,
                "control": False}
    return identity_of_manifest(manifest)


def identity_of_manifest(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """``{attack, norm, radius, draw, control}`` of a poison manifest (see the module doc)."""
    params = manifest.get("params") or {}
    budget = manifest.get("budget") or {}
    norm = budget.get("norm")
    radius: float | None = budget.get("eps")
    if norm == "l0":  # a pixel count: OPS declares none, so read what was measured
        radius = float(radius or (manifest.get("measured") or {}).get("l0_max") or 1)
    attack = str(manifest.get("attack", ""))
    control = attack == "random" and not params.get("classwise", False)
    return {"attack": attack, "norm": norm, "radius": None if radius is None else float(radius),
            "draw": int(params.get("draw", 0) or 0), "control": control}


def match_controls(identities: Mapping[str, Mapping[str, Any] | None]) -> dict[str, str | None]:
    """For every named run: the name of the run it is read against (``None``: clean, a first-draw
    control, or a poison whose budget norm has no control among the runs)."""
    firsts = {name: i for name, i in identities.items()
              if i is not None and i["control"] and i["draw"] == 0}
    out: dict[str, str | None] = {}
    for name, ident in identities.items():
        if ident is None or (ident["control"] and ident["draw"] == 0):
            out[name] = None
            continue
        same = [(n, c) for n, c in firsts.items() if c["norm"] == ident["norm"]]
        if not same:
            out[name] = None
            continue
        out[name] = min(same, key=lambda nc: _distance(nc[1]["radius"], ident["radius"]))[0]
    return out


def _distance(a: float | None, b: float | None) -> float:
    if a is None or b is None:
        return 0.0 if a == b else math.inf
    return abs(math.log(max(a, 1e-12) / max(b, 1e-12)))


def role_of(identity: Mapping[str, Any] | None) -> str:
    """``clean``, ``control`` (a first draw of random noise), ``control-b`` (a further draw) or
    ``poisoned``."""
    if identity is None:
        return "clean"
    if identity["control"]:
        return "control" if identity["draw"] == 0 else "control-b"
    return "poisoned"


def paired_difference(run: Sequence[float | None], control: Sequence[float | None], *,
                      less: str = "lower", level: float = 0.95) -> dict[str, Any]:
    """Per-seed ``run − control`` (seeds where both exist), mean, std, t-interval, separation.

    ``separated`` is True when the interval lies entirely on the "less learnable" side of 0
    (``less``: ``lower`` or ``higher``), False when it does not, ``None`` with fewer than 2 seeds.
    ``direction`` says which side the mean is on (``less``/``more`` learnable, or ``same``).
    """
    diffs = [None if a is None or b is None else float(a) - float(b)
             for a, b in zip(run, control)]
    s = summarize(diffs, level=level, method="t")
    separated: bool | None = None
    if s["ci_low"] is not None and s["ci_high"] is not None:
        separated = (float(s["ci_high"]) < 0) if less == "lower" else (float(s["ci_low"]) > 0)
    mean = s["mean"]
    direction = "same"
    if mean is not None and mean != 0:
        direction = "less" if (mean < 0) == (less == "lower") else "more"
    return {**s, "per_seed": diffs, "separated": separated, "direction": direction}


def separation_text(p: Mapping[str, Any]) -> str:
    """``yes`` / ``no`` / ``n/a (1 seed)`` for a :func:`paired_difference` result."""
    if p.get("separated") is None:
        return "n/a (1 seed)" if p.get("n", 0) < 2 else "n/a"
    return "yes" if p["separated"] else "no"
