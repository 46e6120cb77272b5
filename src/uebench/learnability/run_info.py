"""What a set of stored runs has in common (SAL engine and origin, dataset, model), and what kind
of UD their SAL engine gives. Used to label the results of ``uebench ud`` and the multi-task report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from uebench.learnability.engines import SAL_ENGINES
from uebench.train.run_record import RunRecord

__all__ = ["describe_engine", "run_metadata"]


def _one(values: list[Any], what: str, warnings_out: list[str]) -> str:
    distinct = sorted({str(v) for v in values if v is not None})
    if not distinct:
        return "unknown"
    if len(distinct) > 1:
        warnings_out.append(f"runs differ in {what}: {distinct}")
        return "mixed (" + ", ".join(distinct) + ")"
    return distinct[0]


def _nested(mapping: Mapping[str, Any], *keys: str) -> Any:
    value: Any = mapping
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def run_metadata(runs: Sequence[RunRecord]) -> dict[str, Any]:
    """SAL engine and origin (from the rows' ``sal_engine``/``sal_origin``, else the summary or
    ``config["sal"]``), dataset (``config["data"]["name"]``) and model (``config["model"]["name"]``)
    shared by ``runs``; differing values give ``"mixed (...)"`` and a message in ``warnings``."""
    out_warnings: list[str] = []
    engines: list[Any] = []
    origins: list[Any] = []
    for run in runs:
        row_engines = [r.get("sal_engine") for r in run.rows if r.get("sal_engine") is not None]
        # rows carry the origin's kind in sal_origin_kind (sal_origin is its value, a float)
        row_origins = [
            r.get("sal_origin_kind") for r in run.rows if r.get("sal_origin_kind") is not None
        ]
        engines += row_engines or [
            run.summary.get("sal_engine") or _nested(run.config, "sal", "engine")
        ]
        origins += row_origins or [
            run.summary.get("sal_origin") or _nested(run.config, "sal", "origin")
        ]
    meta = {
        "engine": _one(engines, "SAL engine", out_warnings),
        "origin": _one(origins, "SAL origin", out_warnings),
        "dataset": _one([_nested(r.config, "data", "name") for r in runs], "dataset", out_warnings),
        "model": _one([_nested(r.config, "model", "name") for r in runs], "model", out_warnings),
    }
    if meta["model"].startswith("mixed"):
        out_warnings.append("UD compares runs of the same architecture; the models differ")
    meta["warnings"] = out_warnings
    return meta


def describe_engine(engine: str, origin: str) -> str:
    """What kind of UD a SAL engine gives (docs/sal.md, "How to choose"), from the engine's registry
    metadata (``paper_parity``, ``label``); names no longer registered (old logs) are described
    as such."""
    if engine not in SAL_ENGINES:
        parity = engine == "official"  # the paper code's own logs
        label = engine
    else:
        meta = SAL_ENGINES.meta(engine)
        parity, label = bool(meta.get("paper_parity")), str(meta.get("label", engine))
    if not parity:
        return (f"definition-faithful UD ({label}): follows the paper's definition, not its "
                "protocol, so these are not the paper's numbers; do not compare them with the "
                "paper's Tables 1-3")
    if origin in ("official", "train_running", "unknown"):
        return f"paper-parity UD ({label}: the official code's SAL semantics)"
    return (f"{label} with origin={origin!r}: official optimiser semantics but not the official "
            "origin (the epoch's running train loss), so not exactly the paper's protocol")
