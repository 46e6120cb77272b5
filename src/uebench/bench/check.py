"""``uebench check``: how protected is my data? One report with honest error bars.

The data owner gives the clean dataset and one or more protected versions (poison directories
made for it: ``uebench poison generate`` or ``poison import``). uebench trains every model on the
clean data, on the protected data and on random noise at each protected set's budget (the
control, :mod:`uebench.controls`), under every defense, for several seeds (default 3), measuring
SAL after every epoch (Ye et al., ICLR 2025, arXiv 2509.08058), through the same grid machinery as
``uebench bench`` (store, executors, resumable). The report gives, per protected set × model ×
defense: UD, #LP, the test-accuracy drop paired by seed against the clean model, every statistic
of :mod:`uebench.learnability.statistics` and its paired difference from the control with a 95 %
t-interval, and a verdict by the rule in :mod:`uebench.bench.verdict`; then how detectable each
protected set is (the detectors of ``uebench detect`` on the whole set, beside its verdict:
:mod:`uebench.bench.detectability`; ``detect=False`` skips it), the controls and clean references
and the figures. Written to ``OUT/check/check.html`` (self-contained) and ``check.md``.

Every protected set is also checked with only part of it protected (``ratios``, default 1, 0.8,
0.5 and 0.2: ``poison_ratio``, docs/bench.md, "Partial and mixed poisoning"), each share with its
own control at the same share and the same images, so the report says how protection falls when
a data owner protects only part of the set. Cost: per model, defense and seed, 1 clean run (shared
by every share) + R x (protected sets + controls) runs for R shares, against 1 + sets + controls
with ``ratios=(1,)``: the default four shares train one protected set and its control 9 times
instead of 3.

Default training (no ``--config``): the main job's recipe — ResNet-18 at width 0.125, SGD lr 0.1,
momentum 0.9, weight decay 5e-3, batch 64, cosine, 10 epochs, no augmentation, fast SAL with a
256 + 256-image probe: on 2,000 Fashion-MNIST images the clean model reaches ~83 % and EM, OPS and
LSP each cost >= 20 points (docs/findings.md §1).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from uebench.bench import figures
from uebench.bench.collect import per_seed_values
from uebench.bench.detectability import TITLE as DETECT_TITLE
from uebench.bench.detectability import (
    detect_blocks,
    detect_check_sets,
    detect_headline,
    detect_table,
)
from uebench.bench.graph import build_plan
from uebench.bench.grid import Grid, expand, flatten, grid_from_dict
from uebench.bench.html import Block, to_html, to_markdown
from uebench.bench.report import notes
from uebench.bench.run import run_plan
from uebench.bench.store import Store
from uebench.bench.tables import Entry, Table
from uebench.bench.verdict import HEADLINE, MIN_DROP, rule_text, verdict
from uebench.config import load_yaml, parse_override
from uebench.detect.api import RULE as DETECT_RULE
from uebench.errors import UebenchError
from uebench.evaluation import run_name
from uebench.learnability.stat_report import (
    PAIRED_NOTE,
    add_statistics_by_seed,
    paired_cell,
    paired_grid,
    statistics_grid,
)
from uebench.learnability.statistics import STATISTICS
from uebench.learnability.stats import format_summary, summarize
from uebench.poisons.store import load_poisoned, read_manifest
from uebench.train.run import load_splits
from uebench.utils.io import atomic_write_text, read_json, write_json

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


def check_grid(clean: str, protected: Sequence[Path], *, models: Sequence[str] = DEFAULT_MODELS,
               defenses: Sequence[str] = ("none",), seeds: int = DEFAULT_SEEDS,
               data_dir: str | None = None, test_size: int | None = 2000,
               config_file: str | None = None, overrides: Sequence[str] = (), ci: str = "t",
               controls: bool = True, ratios: Sequence[float] = DEFAULT_RATIOS) -> Grid:
    """The grid of a check: vanilla + each protected set + the random-noise control at each
    protected set's budget (:mod:`uebench.controls`) × models × defenses × protected shares
    (``poison_ratio``, the controls at the same share) × seeds."""
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
    if seeds < 1:
        raise UebenchError(f"--seeds must be >= 1, got {seeds}")
    methods = [{"name": name, "path": str(p)} for name, p in
               zip(poison_names(protected), protected)]
    return grid_from_dict({
        "name": "check", "table": "long", "ci": ci, "base": base, "controls": controls,
        "grid": {"method": methods,
                 "model": [_model_value(m, dict(flatten(base)).get("model.width"))
                           for m in models],
                 "defense": list(dict.fromkeys(["none", *defenses])),
                 RATIO_AXIS: _checked_ratios(ratios),
                 "seed": list(range(seeds))},
    })


def _validate(grid: Grid, protected: Sequence[Path]) -> None:
    """Every protected set fits the clean data (fails before any training)."""
    splits = load_splits(expand(dataclasses.replace(grid, methods=grid.methods[:1]))[0].cfg)
    for p in protected:
        load_poisoned(Path(p), splits.train)


def _share(record: Mapping[str, Any]) -> float | None:
    """The protected share of a record's cell; ``None`` for the clean model, which is the same run
    at every share (:func:`uebench.config.without_poison`)."""
    label = record["labels"].get(RATIO_AXIS)
    return None if record["vanilla"] or label is None else float(label)


def check_rows(records: Sequence[Mapping[str, Any]], *, ci: str, min_drop: float
               ) -> list[dict[str, Any]]:
    """Per (protected set, model, defense, protected share): UD, #LP, accuracy, the drop paired
    by seed against the clean undefended model, every statistic over seeds and paired against
    the cell's random-noise control at the same share, and the verdict
    (:mod:`uebench.bench.verdict`)."""
    def _key(r: Mapping[str, Any], method: str, defense: str) -> tuple[Any, ...]:
        return method, r["labels"]["model"], defense, r["seed"]

    at = {_key(r, r["method"], r["labels"]["defense"]): r for r in records}
    shares = {_share(r) for r in records} - {None}
    cells: dict[tuple[str, str, str, float | None], dict[int, Mapping[str, Any]]] = {}
    for r in records:  # the clean run appears once per share: the same run, counted once
        key = (r["method"], r["labels"]["model"], r["labels"]["defense"], _share(r))
        cells.setdefault(key, {}).setdefault(r["seed"], r)
    rows = []
    for (method, model, defense, share), by_seed in cells.items():
        group = list(by_seed.values())
        drops = []
        for r in group:
            ref = at.get(_key(r, "vanilla", "none"))
            ok = ref and ref["test_acc"] is not None and r["test_acc"] is not None
            drops.append(ref["test_acc"] - r["test_acc"] if ok else None)
        names = list(dict.fromkeys(k for r in group for k in r.get("statistics") or {}))
        shown = share is not None and shares != {1.0}
        row: dict[str, Any] = {
            "method": method, "model": model, "defense": defense, "ratio": share,
            "vanilla": group[0]["vanilla"],
            "role": "clean" if group[0]["vanilla"] else next(
                (r["role"] for r in group if r.get("role")), "poisoned"),
            "control": next((r["control_method"] for r in group if r.get("control_method")),
                            None),
            "label": f"{method} · {model} · {defense}" + (f" · ratio {share:g}" if shown else ""),
            "seeds": [r["seed"] for r in group], "drop_per_seed": drops,
            "drop": summarize(drops, method=ci),  # type: ignore[arg-type]
            "statistics_by_seed": {k: {r["seed"]: (r.get("statistics") or {}).get(k)
                                       for r in group} for k in names}}
        for field in ("ud", "lp", "test_acc"):
            values = [r[field] for r in group]
            row[field], row[f"{field}_per_seed"] = summarize(values, method=ci), values
        rows.append(row)
    for group_rows in _by_setting(rows).values():  # a control pairs within its own share
        for row in group_rows:
            row["name"] = row["method"]
        add_statistics_by_seed(group_rows)
    for row in rows:
        if row["role"] == "poisoned":
            row["verdict"] = verdict(row["drop"], row["paired"].get(HEADLINE),
                                     min_drop=min_drop)
    return rows


def _by_setting(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[Any, ...], list[Any]]:
    """Rows per (model, defense, share); the clean rows (share ``None``) in a group of their own."""
    out: dict[tuple[Any, ...], list[Any]] = {}
    for row in rows:
        out.setdefault((row["model"], row["defense"], row["ratio"]), []).append(row)
    return out


def ratio_table(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Per protected set, model and defense: the verdict and accuracy drop at every share (one
    column per share, highest first); empty when the check has one share."""
    checked = [r for r in rows if r["role"] == "poisoned"]
    shares = sorted({r["ratio"] for r in checked}, reverse=True)
    if len(shares) < 2:
        return [], []
    at = {(r["method"], r["model"], r["defense"], r["ratio"]): r for r in checked}
    body = []
    for method, model, defense in dict.fromkeys((r["method"], r["model"], r["defense"])
                                                for r in checked):
        line = [f"{method} · {model} · {defense}"]
        for share in shares:
            r = at.get((method, model, defense, share))
            line.append("" if r is None else
                        f"{r['verdict']} (drop {format_summary(r['drop'], 1, 100)})")
        body.append(line)
    return ["protected set", *(f"ratio {s:g}" for s in shares)], body


def _table(rows: Sequence[Mapping[str, Any]], title: str, metrics: Sequence[str]) -> Table:
    entries = []
    for r in rows:
        line = [Entry(m, r[m] if r[m].get("mean") is not None else None) for m in metrics]
        if "verdict" in r:
            line.append(Entry("verdict", None, text=r["verdict"]))
        entries.append((r["label"], line))
    shown = [*metrics, *(["verdict"] if rows and "verdict" in rows[0] else [])]
    return Table(title=title, row_title="cell", groups=[""], metrics=list(shown), rows=entries)


def _figures(view: Path, records: Sequence[Mapping[str, Any]], store: Store) -> list[Block]:
    """Per (model, defense, protected share): SAL heat maps and learnable counts of the first
    seed."""
    blocks: list[Block] = []
    first = min(r["seed"] for r in records)
    several = len({r["labels"].get(RATIO_AXIS) for r in records}) > 1
    settings: dict[tuple[str, str, Any], list[Mapping[str, Any]]] = {}
    for r in records:
        if r["seed"] == first and r.get("beta_value") is not None:
            key = (r["labels"]["model"], r["labels"]["defense"], r["labels"].get(RATIO_AXIS))
            settings.setdefault(key, []).append(r)
    for (model, defense, share), group in settings.items():
        beta_key = group[0]["beta"]
        runs = [("clean", store.path("train", beta_key))]
        runs += [(r["method"], store.path("train", r["run"]))
                 for r in group if r["run"] != beta_key]
        at_share = f", ratio {float(share):g}" if several else ""
        stem = f"{model}_{defense}{'_r' + share if several else ''}".replace(":", "-").replace(
            "/", "-")
        blocks.append(("h2", f"Figures: {model}, defense {defense}{at_share} (seed {first})"))
        for path, caption in figures.setting_figures(runs, group[0]["beta_value"],
                                                     view / "figures", stem):
            blocks.append(("img", path, caption))
    return blocks


def verdict_table(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Per protected cell: the accuracy drop, UD, the headline statistic against the control and
    the verdict (what a stored check result holds for the docs)."""
    info = STATISTICS.get(HEADLINE)
    header = ["cell", "acc drop (points)", "UD", f"{info.label}: − control", "verdict"]
    body = [[r["label"], format_summary(r["drop"], 1, 100), format_summary(r["ud"], 3),
             paired_cell(r["paired"].get(HEADLINE) or {"mean": None}, info.digits, info.scale),
             r["verdict"]] for r in rows if r["role"] == "poisoned"]
    return header, body


def _statistics_blocks(rows: Sequence[Mapping[str, Any]]) -> list[Block]:
    """Per (model, defense, protected share): every statistic over seeds (the clean model's
    too) and each protected set against its random-noise control at that share (the numbers the
    verdict reads)."""
    blocks: list[Block] = []
    groups = _by_setting(rows)
    several = len({share for _, _, share in groups} - {None}) > 1
    for (model, defense, share), group in groups.items():
        if share is None:
            continue
        group = [*groups.get((model, defense, None), []), *group]
        header, body = statistics_grid(group)
        if not body:
            continue
        at_share = f", ratio {share:g}" if several else ""
        blocks += [("h2", f"Statistics: {model}, defense {defense}{at_share}"),
                   ("p", "Mean ± std [95 % t-interval] over seeds; definitions in docs/ud.md."),
                   ("grid", header, body)]
        header, body = paired_grid(group)
        if body:
            blocks += [("p", PAIRED_NOTE), ("grid", header, body)]
    return blocks


def _ratio_blocks(rows: Sequence[Mapping[str, Any]]) -> list[Block]:
    header, body = ratio_table(rows)
    if not body:
        return []
    return [("h2", "Protection by protected share"),
            ("p", "The verdict and the accuracy drop (points, mean ± std [95 % interval] over "
                  "seeds) when only that share of the set is protected (poison_ratio: a "
                  "class-stratified subset, the same images for every seed and for the control; "
                  "the rest stay clean). Each share is read against its own random-noise control "
                  "at the same share."),
            ("grid", header, body)]


def write_check_report(view: Path, rows: Sequence[Mapping[str, Any]], records: Sequence[Any],
                       collected: Mapping[str, Any], *, min_drop: float, store: Store,
                       detected: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Path]:
    """``check.html``, ``check.md`` and ``check.json`` in ``view``; ``detected``: the readings of
    :func:`uebench.bench.detectability.detect_check_sets` (``None``: not run, no such section)."""
    checked = [r for r in rows if r["role"] == "poisoned"]
    overview = figures.plot_overview(checked, view / "figures" / "overview.png",
                                     min_drop=min_drop, headline=HEADLINE)
    counts = {v: sum(r["verdict"] == v for r in checked) for v in dict.fromkeys(
        r["verdict"] for r in checked)}
    blocks: list[Block] = [
        ("h1", "How protected is this data?"),
        ("p", "Verdicts: " + ", ".join(f"**{v}** {n}" for v, n in counts.items())
         + f" (of {len(checked)} cells)." + detect_headline(detected or [])),
        ("p", "Rule: " + rule_text(min_drop)),
        ("table", _table(checked, "protected data", ("ud", "lp", "test_acc", "drop"))),
        ("img", overview, f"`{HEADLINE}` against the random-noise control, and the accuracy "
                          "drop, per cell with 95 % intervals; dashed: thresholds"),
        *_ratio_blocks(rows),
        *detect_blocks(rows, detected or []),
        ("h2", "Controls and clean references"),
        ("p", "Random noise at each protected set's budget (the control every statistic is read "
              "against) and the clean model per model and defense; a clean model's UD is the "
              "defense's own effect on learnability (1 for the undefended clean run, by "
              "definition: it sets β)."),
        ("table", _table([r for r in rows if r["role"] != "poisoned"], "controls and clean data",
                         ("ud", "lp", "test_acc"))),
        *_statistics_blocks(rows),
        *_figures(view, records, store),
        ("h2", "Notes"), ("ul", notes(collected)),
    ]
    files = {"html": view / "check.html", "md": view / "check.md", "json": view / "check.json"}
    atomic_write_text(files["html"], to_html("uebench check", blocks))
    atomic_write_text(files["md"], to_markdown(blocks, relative_to=view))
    summary: dict[str, Any] = {"rule": rule_text(min_drop), "min_drop": min_drop,
                               "headline": HEADLINE, "rows": list(rows)}
    if detected is not None:
        header, body = detect_table(rows, detected)
        summary["detect"] = {"rule": DETECT_RULE, "sets": list(detected)}
        summary["protected_vs_detectable"] = {"title": DETECT_TITLE, "header": header,
                                              "rows": body}
    write_json(files["json"], summary)
    return files


def run_check(clean: str, protected: Sequence[Path], *, store: Path | str, out: Path | str,
              executor: Any, min_drop: float = MIN_DROP, progress: bool = True,
              detect: bool = True, **grid_options: Any) -> dict[str, Any]:
    """Plan, run (or reuse) and report a check; ``grid_options`` go to :func:`check_grid`.

    ``detect``: also run the detectors of ``uebench detect`` on every protected set and control
    (whole sets; stored in ``OUT/check/detect/`` and reused by a rerun) and report them beside the
    verdicts (``uebench check --no-detect``: ``False``). The result's ``detect`` holds the
    readings (``None`` when skipped).
    """
    protected = [Path(p) for p in protected]
    grid = check_grid(clean, protected, **grid_options)
    _validate(grid, protected)
    plan = build_plan(grid, Store(store))
    result = run_plan(plan, out, executor, progress=progress)
    view = Path(result["view"])

    records, _ = per_seed_values(read_json(view / "index.json"))
    rows = check_rows(records, ci=grid.ci, min_drop=min_drop)
    detected = detect_check_sets(grid, plan.store, view, data_dir=grid_options.get("data_dir"),
                                 progress=progress) if detect else None
    files = write_check_report(view, rows, records, result["tables"], min_drop=min_drop,
                               store=plan.store, detected=detected)
    return {**result, "rows": rows, "detect": detected,
            "files": {k: str(v) for k, v in files.items()}}
