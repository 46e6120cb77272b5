"""The grid of ``uebench check``: its default recipe, models, protected shares and seeds, and the
check that every protected set fits the clean data before any training."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from uebench.bench.axes import flatten
from uebench.bench.grid import Grid, expand, grid_from_dict
from uebench.config import load_yaml, parse_override
from uebench.errors import UebenchError
from uebench.evaluation import run_name
from uebench.poisons.manifest import read_manifest
from uebench.poisons.store import load_poisoned
from uebench.train.partial import refuse_drop
from uebench.train.run import load_splits

# the main job's recipe (docs/findings.md §1): with the paper's batch 128 and weight decay 5e-4
# EM's cost on 2,000 images was a lottery (11-41 points); batch 64 and 5e-3 make it reliable
CHECK_DEFAULTS: dict[str, Any] = {
    "model.width": 0.125, "train.epochs": 10, "train.optimizer": "sgd", "train.lr": 0.1,
    "train.momentum": 0.9, "train.weight_decay": 5e-3, "train.batch_size": 64,
    "train.schedule": "cosine", "train.augment": "none",
    "sal.options": {"probe_size": 256, "eval_size": 256},
}
DEFAULT_SEEDS = 3
DEFAULT_MODELS = ("resnet18",)
# the shares of the protected set that are checked (poison_ratio): all of it, and three parts
DEFAULT_RATIOS = (1.0, 0.8, 0.5, 0.2)
RATIO_AXIS = "poison_ratio"
# the method name of the drop twin's cells (the clean part alone)
CLEAN_PART = "clean-part"


def _model_value(spec: str, base_width: Any) -> dict[str, Any]:
    """``resnet18`` or ``resnet18:0.25`` (name:width) -> an axis value labelled with its width."""
    name, _, width = spec.partition(":")
    value: dict[str, Any] = {"name": name}
    if width:
        try:
            value["width"] = float(width)
        except ValueError:
            raise UebenchError(f"--models: {spec!r} is not NAME or NAME:WIDTH") from None
    shown = value.get("width", base_width)
    value["label"] = name if shown in (None, 1, 1.0) else f"{name}x{float(shown):g}"
    return value


def parse_ratios(text: str) -> list[float]:
    """``"1,0.8,0.5"`` -> ``[1.0, 0.8, 0.5]`` (``--ratios``), each a share in [0, 1]."""
    try:
        ratios = [float(r) for r in text.split(",") if r.strip()]
    except ValueError:
        raise UebenchError(f"--ratios must be comma-separated numbers in [0, 1] such as "
                           f"1,0.8,0.5,0.2, got {text!r}") from None
    return ratios


def _checked_ratios(ratios: Sequence[float]) -> list[float]:
    ratios = list(dict.fromkeys(float(r) for r in ratios))
    bad = [r for r in ratios if not 0 <= r <= 1]
    if not ratios or bad:
        raise UebenchError(f"--ratios must be shares of the protected set in [0, 1] such as "
                           f"1,0.8,0.5,0.2, got {bad or 'none'}")
    return ratios


def poison_names(protected: Sequence[Path]) -> list[str]:
    taken: set[str] = set()
    return [run_name(Path(p), taken) for p in protected]


def check_spec(clean: str, protected: Sequence[Path], *,
               models: Sequence[str] = DEFAULT_MODELS, defenses: Sequence[str] = ("none",),
               seeds: int = DEFAULT_SEEDS, data_dir: str | None = None,
               test_size: int | None = 2000, config_file: str | None = None,
               overrides: Sequence[str] = (), ci: str = "t", controls: bool = True,
               ratios: Sequence[float] = DEFAULT_RATIOS) -> dict[str, Any]:
    """The grid file of a check (what :func:`grid_from_dict` reads): vanilla + each protected
    set + the random-noise control at each protected set's budget (:mod:`uebench.controls`) ×
    models × defenses × protected shares (``poison_ratio``, the controls at the same share) ×
    seeds."""
    if not protected:
        raise UebenchError("check needs at least one --protected POISON directory")
    manifests = [read_manifest(p) for p in protected]
    subsets = {(m["dataset"], m["n"], m.get("seed")) for m in manifests}
    if len(subsets) != 1 or next(iter(subsets))[0] != clean:
        raise UebenchError(f"the protected sets were made for {sorted(subsets)} (dataset, n, "
                           f"seed), not all for --clean {clean}: check each subset separately")
    _, n, seed = next(iter(subsets))
    base: dict[str, Any] = dict(load_yaml(config_file)) if config_file else dict(CHECK_DEFAULTS)
    base.update({"data.name": clean, "data.data_dir": data_dir, "data.train_size": n,
                 "data.subset_seed": seed or 0})
    if test_size is not None:
        base["data.test_size"] = test_size
    for item in overrides:
        path, value = parse_override(item)
        base[".".join(path)] = value
    refuse_drop(base.get("poison_mix", "replace"), where="a check",
                spelled="poison_mix=drop")
    if seeds < 1:
        raise UebenchError(f"--seeds must be >= 1, got {seeds}")
    methods = [{"name": name, "path": str(p)} for name, p in
               zip(poison_names(protected), protected)]
    return {
        "name": "check", "table": "long", "ci": ci, "base": base, "controls": controls,
        "grid": {"method": methods,
                 "model": [_model_value(m, dict(flatten(base)).get("model.width"))
                           for m in models],
                 "defense": list(dict.fromkeys(["none", *defenses])),
                 RATIO_AXIS: _checked_ratios(ratios),
                 "seed": list(range(seeds))},
    }


def check_grid(clean: str, protected: Sequence[Path], **options: Any) -> Grid:
    """The grid of a check (:func:`check_spec`'s file, parsed)."""
    return grid_from_dict(check_spec(clean, protected, **options))


def clean_part_grid(spec: Mapping[str, Any]) -> Grid | None:
    """The check's drop twin: at every protected share below 1, the clean part alone
    (``poison_mix: drop``, the same protected subset: it is drawn from the data seed), per model,
    defense and seed, so each share can be read against what its clean images teach without
    the protected ones (:mod:`uebench.bench.clean_part`). One run per share stands for every
    protected set: all of them leave out the same images. Shares 0 and 1 have no twin (nothing
    left out; nothing left); ``None`` when no share is strictly between them or the mix is not
    ``replace`` (``add`` keeps the whole clean set: its twin is the clean run itself)."""
    shares = [r for r in spec["grid"][RATIO_AXIS] if 0 < r < 1]
    if not shares or spec["base"].get("poison_mix", "replace") != "replace":
        return None
    # the config needs a poison whose images are all left out: random noise made for the same
    # subset, so the twin's runs do not depend on which protected set is named first
    return grid_from_dict({
        **spec, "name": "check-clean-part", "controls": False,
        "base": {**spec["base"], "poison_mix": "drop"},
        "grid": {**spec["grid"], "method": [{"name": CLEAN_PART, "attack": "random"}],
                 RATIO_AXIS: shares}})


def validate_protected(grid: Grid, protected: Sequence[Path]) -> None:
    """Every protected set fits the clean data (fails before any training)."""
    splits = load_splits(expand(dataclasses.replace(grid, methods=grid.methods[:1]))[0].cfg)
    for p in protected:
        load_poisoned(Path(p), splits.train)
