"""The job graph of a grid: poison generation -> training runs -> tables, keyed by content.

Each cell of the grid (:func:`uebench.bench.grid.expand`) becomes a ``train`` job; a poisoned cell
depends on a ``poison`` job (one per attack, preset, parameters and clean subset, shared by every
model, defense and seed that uses it). A defended cell also needs the *undefended* clean run of its
seed, where β and the UD denominator come from (the paper's Table 2), which is added when the grid
does not already hold it. Jobs with equal keys are one job: the graph is deduplicated, and the
store (:mod:`uebench.bench.store`) reuses whatever an earlier grid already computed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from uebench.attacks.base import resolve_params
from uebench.attacks.generate import json_ready
from uebench.bench.axes import Method
from uebench.bench.grid import Cell, Grid, expand
from uebench.bench.store import Store, job_key
from uebench.config import RunCfg, to_dict, without_poison
from uebench.poisons.manifest import read_manifest
from uebench.poisons.store import content_hash

DEFAULT_RESOURCES = {"cpus": 1.0, "gpus": 0.0}


@dataclasses.dataclass(frozen=True)
class Job:
    """One unit of work. ``spec`` defines the result (the key is its hash); ``payload`` only says
    where things are (the store, an external poison's path) and never changes the result."""

    kind: str
    key: str
    spec: Mapping[str, Any]
    label: str
    deps: tuple[str, ...] = ()
    payload: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    resources: Mapping[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Plan:
    """A grid's jobs (poisons first, in grid order) and the cell index the tables are built from."""

    grid: Grid
    store: Store
    jobs: dict[str, Job]
    entries: list[dict[str, Any]]

    def todo(self) -> list[Job]:
        return [j for j in self.jobs.values() if not self.store.is_complete(j.kind, j.key)]


def poison_spec(method: Method, cfg: RunCfg) -> dict[str, Any]:
    """What a generated poison is a function of: attack, preset, resolved parameters, subset."""
    assert method.attack is not None
    params = json_ready(resolve_params(method.attack, method.preset, dict(method.params)))
    return {"attack": method.attack, "preset": method.preset, "params": params,
            "dataset": cfg.data.name, "data_dir": cfg.data.data_dir,
            "train_size": cfg.data.train_size, "seed": cfg.data.subset_seed}


def external_poison_ref(path: Path, store: Store) -> str:
    """An existing poison is known by its content (sha256 of its tensors), not by its path; one
    of this store's own poisons by its key, so its runs are the grids' runs (computed once)."""
    manifest = read_manifest(path)
    key = store.key_of("poison", path)
    if key is not None:
        return f"poison:{key}"
    return "sha256:" + str(manifest.get("sha256") or content_hash(path))


def train_spec(cfg: RunCfg, poison_ref: str | None) -> dict[str, Any]:
    """The resolved RunCfg (device: the executor's; poison: by reference) of a training job; a
    clean job without the poisoned share and mix, so every ratio of a grid shares its clean run."""
    if poison_ref is None:
        cfg = without_poison(cfg)
    data = to_dict(dataclasses.replace(cfg, poison=None, device="auto"))
    return {"cfg": data, "poison": poison_ref}


class _Builder:
    def __init__(self, grid: Grid, store: Store) -> None:
        self.grid, self.store = grid, store
        self.jobs: dict[str, Job] = {}
        self.external: dict[str, str] = {}  # path -> ref

    def resources(self, kind: str) -> dict[str, float]:
        return {**DEFAULT_RESOURCES, **{k: float(v) for k, v in
                                        (self.grid.resources.get(kind) or {}).items()}}

    def add(self, job: Job) -> str:
        self.jobs.setdefault(job.key, job)
        return job.key

    def poison(self, method: Method, cfg: RunCfg) -> tuple[str | None, str | None, dict]:
        """(dependency key, poison ref, payload) of a cell's poison."""
        if method.path is not None:
            path = str(Path(method.path).resolve())
            if path not in self.external:
                self.external[path] = external_poison_ref(Path(path), self.store)
            return None, self.external[path], {"poison_path": path}
        if method.attack is None:
            return None, None, {}
        spec = poison_spec(method, cfg)
        key = self.add(Job("poison", job_key("poison", spec), spec,
                           label=f"poison {method.name} ({cfg.data.name}, n={cfg.data.train_size})",
                           payload={"store": str(self.store.root)},
                           resources=self.resources("poison")))
        return key, f"poison:{key}", {}

    def train(self, cell: Cell, cfg: RunCfg, label: str) -> str:
        dep, ref, payload = self.poison(cell.method, cfg)
        spec = train_spec(cfg, ref)
        return self.add(Job("train", job_key("train", spec), spec, label=label,
                            deps=(dep,) if dep else (),
                            payload={"store": str(self.store.root), **payload},
                            resources=self.resources("train")))


def cell_labels(cell: Cell) -> dict[str, str]:
    """Labels of a cell on every table axis (the grid's own labels where it has that axis)."""
    cfg = cell.cfg
    width = "" if cfg.model.width == 1 else f"x{cfg.model.width:g}"
    labels = {"method": cell.method.name, "dataset": cfg.data.name,
              "model": cfg.model.name + width, "defense": cfg.defense}
    labels.update(dict(cell.setting))
    return labels


def cell_text(cell: Cell) -> str:
    parts = [cell.method.name, *(v for _, v in cell.setting), f"seed {cell.seed}"]
    return " / ".join(parts)


def build_plan(grid: Grid, store: Store) -> Plan:
    """Expand the grid and key every job (nothing is run; bad settings raise here)."""
    builder = _Builder(grid, store)
    entries = []
    cells = expand(grid)
    for cell in cells:  # poisons first: their order is the order work starts in
        if cell.method.attack is not None:
            builder.poison(cell.method, cell.cfg)
    for cell in cells:
        run = builder.train(cell, cell.cfg, label=f"train {cell_text(cell)}")
        beta_cfg = cell.cfg
        if cell.cfg.defense != "none" and grid.beta_from == "undefended":
            beta_cfg = dataclasses.replace(cell.cfg, defense="none")
        vanilla = dataclasses.replace(cell, method=grid.methods[0], cfg=beta_cfg)
        beta = builder.train(vanilla, beta_cfg,
                             label=f"train vanilla, undefended (β of {cell_text(cell)})")
        entries.append({"method": cell.method.name, "setting": dict(cell.setting),
                        "labels": cell_labels(cell), "seed": cell.seed, "run": run,
                        "beta": beta, "vanilla": cell.method.vanilla})
    return Plan(grid, store, builder.jobs, entries)
