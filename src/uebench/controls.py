"""Random-noise controls at each poison's budget, made next to the poisons they control.

A learnability number of a poison means something only beside the same number for harmless noise
of the same size (docs/ud.md, "Read against a control"). For every budget among the poisons, one
control: ℓ∞ uniform noise at the poison's ε, ℓ2 noise of a random direction at its radius, or
random pixels at its pixel count (ℓ0, e.g. OPS's one pixel). A control the user already gives
(a ``random`` poison of that norm and radius) is used instead of a new one. Generation is cached:
an existing control directory with the same settings is reused.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from uebench.attacks.generate import generate_poison
from uebench.learnability.paired import identity_of_manifest
from uebench.poisons.manifest import read_manifest

EM_EPS = 8 / 255


def control_params(norm: str, radius: float) -> dict[str, Any]:
    """The ``random`` attack's parameters of the control for one budget."""
    if norm == "l0":
        return {"norm": "l0", "eps": max(1, int(round(radius)))}
    return {"norm": norm, "eps": float(radius)}


def _same(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-6)


def needed_controls(manifests: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]],
                                                                       list[str]]:
    """The controls the poisons need and do not already have, and notes for poisons that cannot
    have one (no declared budget). Each control: ``{name, params, dataset, n, seed}``."""
    idents = [identity_of_manifest(m) for m in manifests]
    have = [(i["norm"], i["radius"]) for i in idents if i["control"] and i["draw"] == 0]
    wanted: list[tuple[str, float, Mapping[str, Any]]] = []
    notes = []
    for ident, manifest in zip(idents, manifests):
        if ident["control"]:
            continue
        if ident["norm"] not in ("linf", "l2", "l0") or ident["radius"] is None:
            notes.append(f"no control for {manifest.get('attack')}: its manifest declares no "
                         "budget norm and radius (import it with --norm and --eps)")
            continue
        key = (ident["norm"], ident["radius"])
        known = [*have, *((n, r) for n, r, _ in wanted)]
        if not any(n == key[0] and _same(r, key[1]) for n, r in known):
            wanted.append((key[0], key[1], manifest))
    out = []
    for norm, radius, manifest in wanted:
        several = sum(n == norm for n, _, _ in wanted) > 1
        if norm == "linf" and _same(radius, EM_EPS) and not several:
            name = "random"
        elif several:
            name = f"random-{norm}-{radius:.4g}"
        else:
            name = f"random-{norm}"
        out.append({"name": name, "params": control_params(norm, radius),
                    "dataset": manifest["dataset"], "n": manifest["n"],
                    "seed": manifest.get("seed") or 0})
    return out, notes


def make_controls(poisons: Sequence[Path], out: Path, *, data_dir: str | None = None,
                  progress: bool = True) -> tuple[list[Path], list[str]]:
    """Generate (or reuse) in ``out/<name>`` the controls ``poisons`` need; their paths and
    notes."""
    controls, notes = needed_controls([read_manifest(Path(p)) for p in poisons])
    paths = []
    for c in controls:
        path = Path(out) / c["name"]
        generate_poison("random", dataset=c["dataset"], out=path, data_dir=data_dir,
                        train_size=c["n"], seed=int(c["seed"]), params=c["params"],
                        progress=progress)
        paths.append(path)
    return paths, notes
