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
a data owner protects only part of the set; and each share below 1 against the clean part alone
(the protected images left out: ``clean_part``, :mod:`uebench.bench.clean_part`), so it also says
whether the protected images still teach the model anything. Cost: per model, defense and seed,
1 clean run (shared by every share) + R x (protected sets + controls) runs for R shares + 1 clean
part run per share below 1, against 1 + sets + controls with ``ratios=(1,)``: the default four
shares train one protected set and its control 12 runs instead of 3 (9 with ``clean_part=False``).

Default training (no ``--config``): the main job's recipe — ResNet-18 at width 0.125, SGD lr 0.1,
momentum 0.9, weight decay 5e-3, batch 64, cosine, 10 epochs, no augmentation, fast SAL with a
256 + 256-image probe: on 2,000 Fashion-MNIST images the clean model reaches ~83 % and EM, OPS and
LSP each cost >= 20 points (docs/findings.md §1).

The grid and its defaults are in :mod:`uebench.bench.check_grid`, the rows and verdicts in
:mod:`uebench.bench.check_rows`, the report's pages and tables in :mod:`uebench.bench.check_report`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from uebench.bench.check_grid import check_spec, clean_part_grid, validate_protected
from uebench.bench.check_report import write_check_report
from uebench.bench.check_rows import check_rows
from uebench.bench.clean_part import clean_part_rows
from uebench.bench.collect import per_seed_values
from uebench.bench.detectability import detect_check_sets
from uebench.bench.graph import build_plan
from uebench.bench.grid import grid_from_dict
from uebench.bench.run import run_plan
from uebench.bench.store import Store
from uebench.bench.verdict import MIN_DROP
from uebench.utils.io import read_json


def run_check(clean: str, protected: Sequence[Path], *, store: Path | str, out: Path | str,
              executor: Any, min_drop: float = MIN_DROP, progress: bool = True,
              detect: bool = True, clean_part: bool = True,
              **grid_options: Any) -> dict[str, Any]:
    """Plan, run (or reuse) and report a check; ``grid_options`` go to :func:`check_grid`.

    ``detect``: also run the detectors of ``uebench detect`` on every protected set and control
    (whole sets; stored in ``OUT/check/detect/`` and reused by a rerun) and report them beside the
    verdicts (``uebench check --no-detect``: ``False``). The result's ``detect`` holds the
    readings (``None`` when skipped).

    ``clean_part``: at every share below 1 also train the clean part alone (the drop twin,
    :func:`uebench.bench.check_grid.clean_part_grid`; ``OUT/check-clean-part/``) and read each
    share against it (:mod:`uebench.bench.clean_part`: do the protected images still teach the
    model anything?). The result's ``clean_part`` holds the rows (``None`` when skipped or when
    no share is below 1; ``uebench check --no-clean-part``: ``False``).
    """
    protected = [Path(p) for p in protected]
    spec = check_spec(clean, protected, **grid_options)
    grid = grid_from_dict(spec)
    validate_protected(grid, protected)
    plan = build_plan(grid, Store(store))
    result = run_plan(plan, out, executor, progress=progress)
    view = Path(result["view"])
    twin = clean_part_grid(spec) if clean_part else None
    part = None
    if twin is not None:  # after the check's own runs: its clean runs are reused
        twin_result = run_plan(build_plan(twin, plan.store), out, executor, progress=progress)
        result["failures"] = {**result["failures"], **twin_result["failures"]}
        part = clean_part_rows(result["tables"]["cells"], twin_result["tables"]["cells"])

    records, _ = per_seed_values(read_json(view / "index.json"))
    rows = check_rows(records, ci=grid.ci, min_drop=min_drop)
    detected = detect_check_sets(grid, plan.store, view, data_dir=grid_options.get("data_dir"),
                                 progress=progress) if detect else None
    files = write_check_report(view, rows, records, result["tables"], min_drop=min_drop,
                               store=plan.store, detected=detected, clean_part=part)
    return {**result, "rows": rows, "detect": detected, "clean_part": part,
            "files": {k: str(v) for k, v in files.items()}}
