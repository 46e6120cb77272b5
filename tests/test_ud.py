"""β, #LP and UD (paper Eqs. 4-5, as get_ud.py) on hand-computed fixtures; reports and figures."""

from __future__ import annotations

import csv
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from uebench.learnability.distance import (
    learnable_counts,
    learnable_proportions,
    num_lp,
    ud,
    ud_table,
    unlearnable_distance,
)
from uebench.learnability.parameter_cdf import plot_parameter_cdf
from uebench.learnability.plots import plot_learnable_counts, plot_sal_heatmaps
from uebench.learnability.report import IncompleteRunError, RunError, load_run, recompute
from uebench.learnability.results import write_results
from uebench.learnability.run_info import describe_engine
from uebench.learnability.task_similarity import plot_task_similarity, sal_cosine_similarity
from uebench.learnability.threshold import (
    SalDataError,
    epoch_thresholds,
    learnable_threshold,
    round_like_official,
    sal_matrix,
)
from uebench.utils.stored import parse_markdown_tables

LAYERS = ["net.conv1", "net.conv2", "net.conv3", "net.conv4", "net.fc"]

# Each epoch has two obvious clusters; the 2-means centres and midpoints by hand:
#   epoch 1: {0.10, 0.12, 0.11} -> 0.11, {0.9, 1.0} -> 0.95,   midpoint 0.53
#   epoch 2: {0.2, 0.2, 0.2}    -> 0.2,  {0.8, 0.6} -> 0.7,    midpoint 0.45
#   epoch 3: {0.05 x 4}         -> 0.05, {0.65}     -> 0.65,   midpoint 0.35
# β = (0.53 + 0.45 + 0.35) / 3 = 0.44333...
CLEAN = np.array([
    [0.10, 0.12, 0.90, 1.00, 0.11],
    [0.20, 0.20, 0.20, 0.80, 0.60],
    [0.05, 0.05, 0.05, 0.05, 0.65],
])
MIDPOINTS = [0.53, 0.45, 0.35]
BETA = 1.33 / 3
CLEAN_COUNTS = [2, 2, 1]  # layers > β per epoch (0.6 > 0.4433 counts; 0.2 does not)
# Poisoned: 0.5 > β; 0.44 < β < 0.45.
POISONED = np.array([
    [0.50, 0.10, 0.10, 0.10, 0.10],
    [0.10, 0.10, 0.10, 0.10, 0.10],
    [0.44, 0.45, 0.00, 0.00, 0.00],
])
POISONED_COUNTS = [1, 0, 1]
UD = (2 / 3) / (5 / 3)  # 0.4


def rows_of(matrix: np.ndarray, layers=LAYERS, *, acc: float = 0.5, flat: bool = False,
            engine: str = "fast", origin: str = "eval") -> list[dict]:
    rows = []
    for e, values in enumerate(np.asarray(matrix).tolist(), start=1):
        row = {"epoch": e, "train_loss": 1.0 / e, "train_acc": 0.1 * e, "test_loss": 1.0,
               "test_acc": acc, "sal_engine": engine, "sal_origin_kind": origin}
        if flat:
            row.update({f"sal/{k}": v for k, v in zip(layers, values)})
        else:
            row["sal"] = dict(zip(layers, values))
        rows.append(row)
    return rows


def write_run(root: Path, name: str, matrix: np.ndarray, *, acc: float, complete: bool = True,
              engine: str = "fast", origin: str = "eval") -> Path:
    run_dir = root / name
    run_dir.mkdir(parents=True)
    rows = rows_of(matrix, acc=acc, engine=engine, origin=origin)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = {"data": {"name": "synthetic"}, "model": {"name": "tiny"}, "seed": 0}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg))
    if complete:
        (run_dir / "summary.json").write_text(json.dumps({"test_acc": acc, "epochs": len(rows)}))
    return run_dir


# --------------------------------------------------------------------------- β


def test_epoch_midpoints_and_beta_by_hand():
    np.testing.assert_allclose(epoch_thresholds(CLEAN), MIDPOINTS, atol=1e-12)
    assert learnable_threshold(CLEAN) == pytest.approx(BETA, abs=1e-12)
    assert learnable_threshold(rows_of(CLEAN)) == pytest.approx(BETA, abs=1e-12)


def test_degenerate_epochs_have_their_value_as_threshold():
    matrix = np.array([[0.3, 0.3, 0.3], [0.1, 0.1, 0.9]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no sklearn "fewer distinct clusters" warning
        np.testing.assert_allclose(epoch_thresholds(matrix), [0.3, 0.5])
    np.testing.assert_allclose(epoch_thresholds(np.array([[0.7], [0.2]])), [0.7, 0.2])


# --------------------------------------------------------------------------- #LP and UD


def test_counts_lp_and_ud_by_hand():
    np.testing.assert_array_equal(learnable_counts(CLEAN, BETA), CLEAN_COUNTS)
    np.testing.assert_array_equal(learnable_counts(POISONED, BETA), POISONED_COUNTS)
    np.testing.assert_allclose(learnable_proportions(CLEAN, BETA), [0.4, 0.4, 0.2])
    assert num_lp(CLEAN, BETA) == pytest.approx(5 / 3)
    assert num_lp(POISONED, BETA) == pytest.approx(2 / 3)
    assert unlearnable_distance(CLEAN, POISONED) == pytest.approx(UD)
    assert unlearnable_distance(CLEAN, CLEAN) == pytest.approx(1.0)


def test_ud_accepts_layer_maps_and_both_row_formats():
    clean_maps = [dict(zip(LAYERS, r)) for r in CLEAN.tolist()]
    # poisoned layers stored in another order: matched by name
    poisoned_maps = [dict(reversed(list(zip(LAYERS, r)))) for r in POISONED.tolist()]
    assert ud(clean_maps, poisoned_maps) == pytest.approx(UD)
    assert ud(rows_of(CLEAN), rows_of(POISONED, flat=True)) == pytest.approx(UD)
    # poisoned runs may have a different number of epochs (T^p in Eq. 5)
    assert ud(clean_maps, poisoned_maps[:1]) == pytest.approx(1 / (5 / 3))


def test_count_is_strictly_greater_than_beta():
    matrix = np.array([[0.5, 0.6, 0.4], [0.5, 0.5, 0.5]])
    np.testing.assert_array_equal(learnable_counts(matrix, 0.5), [1, 0])
    assert num_lp(matrix, 0.5) == 0.5


def test_four_decimal_rounding_like_the_official_logs():
    np.testing.assert_array_equal(round_like_official([0.123456, 0.49996, 1.23449]),
                                  [0.1235, 0.5, 1.2345])
    np.testing.assert_array_equal(round_like_official(np.array([[2.5e-5, 0.7]]), 2), [[0.0, 0.7]])
    clean = [{"a": 0.9, "b": 0.1}]
    poisoned = [{"a": 0.50004, "b": 0.1}]
    # 0.50004 > 0.5 as stored, but the official logs print it as 0.5000, which is not > 0.5
    assert ud(clean, poisoned, beta=0.5) == 1.0
    assert ud(clean, poisoned, beta=0.5, decimals=4) == 0.0
    m, layers = sal_matrix(rows_of(np.array([[0.123456, 0.98765]]), ["x", "y"]), decimals=4)
    assert layers == ["x", "y"]
    np.testing.assert_array_equal(m, [[0.1235, 0.9877]])


# Paper Table 1 (columns CIFAR-10, CIFAR-100, ImageNet-100) and Table 2 (CIFAR-10, defended),
# as (#LP clean, #LP poisoned, UD). Table 2 divides by the *undefended* clean #LP 3.32.
TABLE1 = [
    *[(3.32, lp, u) for lp, u in [(0.62, 0.187), (1.54, 0.464), (1.00, 0.301), (5.44, 1.639),
                                  (1.14, 0.343), (0.52, 0.157)]],
    *[(2.25, lp, u) for lp, u in [(0.25, 0.111), (2.25, 1.000), (2.24, 0.996), (2.73, 1.213),
                                  (0.84, 0.373), (0.02, 0.009)]],
    *[(1.86, lp, u) for lp, u in [(0.02, 0.011), (2.38, 1.280), (3.40, 1.828), (4.22, 2.269),
                                  (3.34, 1.796), (2.66, 1.430)]],
]
TABLE2 = [(3.32, lp, u) for lp, u in [
    (2.48, 0.747), (7.14, 2.151), (4.32, 1.301), (3.64, 1.097), (3.72, 1.120),  # vanilla
    (1.24, 0.373), (0.40, 0.120), (0.42, 0.127), (1.28, 0.386), (1.56, 0.470),  # EM
    (1.66, 0.500), (2.92, 0.880), (0.81, 0.243), (1.92, 0.579), (2.01, 0.605),  # TAP
    (2.16, 0.651), (0.56, 0.169), (1.18, 0.355), (1.60, 0.482), (1.54, 0.464),  # OPS
]]
# Off by one in the 3rd decimal from the *printed* #LPs; consistent with #LPs that were
# rounded to 2 decimals for printing (e.g. 3.6425 / 3.32 = 1.0971).
PRINT_ROUNDED = {(3.64, 1.097), (0.81, 0.243), (1.92, 0.579)}


def matrix_with_lp(lp: float, epochs: int = 100, layers: int = 21) -> np.ndarray:
    """SAL 1.0 for learnable entries, 0.0 otherwise, so that #LP at β = 0.5 is exactly lp."""
    total = round(lp * epochs)
    counts = [total // epochs + (1 if e < total % epochs else 0) for e in range(epochs)]
    m = np.zeros((epochs, layers))
    for e, c in enumerate(counts):
        m[e, :c] = 1.0
    return m


@pytest.mark.parametrize(("lp_clean", "lp", "expected"), TABLE1 + TABLE2)
def test_paper_tables_1_and_2_arithmetic(lp_clean, lp, expected):
    clean, poisoned = matrix_with_lp(lp_clean), matrix_with_lp(lp)
    assert num_lp(clean, 0.5) == pytest.approx(lp_clean)
    assert num_lp(poisoned, 0.5) == pytest.approx(lp)
    value = unlearnable_distance(clean, poisoned, beta=0.5)
    if (lp, expected) in PRINT_ROUNDED:
        assert abs(value - expected) <= 0.005 / lp_clean + 5e-4
    else:
        assert round(value, 3) == expected


def test_docs_paper_tables_are_the_checked_ones():
    # docs/ud.md, "The paper's reported values": its Tables 1 and 2 are the entries whose
    # arithmetic is checked above; Table 3's ResNet-18 row repeats Table 1's CIFAR-10 column, and
    # its other rows mix the two denominators the page describes
    page = (Path(__file__).resolve().parents[1] / "docs" / "ud.md").read_text(encoding="utf-8")
    section = page.split("## The paper's reported values")[1].split("\n## ")[0]
    (h1, t1), (h2, t2), (h3, t3) = parse_markdown_tables(section)

    def lp_ud(cell: str) -> tuple[float, float]:
        lp, ud_ = cell.split(" / ")
        return float(lp), float(ud_)

    assert [r[0] for r in t1] == ["clean", "EM", "REM", "DC", "TAP", "LSP", "OPS"]
    # Table 1 column by column (dataset), the clean row giving each column's #LP only
    assert [(float(t1[0][j]), *lp_ud(row[j])) for j in range(1, len(h1))
            for row in t1[1:]] == TABLE1
    # Table 2 row by row; every UD divides by the undefended clean #LP
    assert [(3.32, *lp_ud(row[j])) for row in t2 for j in range(1, len(h2))] == TABLE2
    resnet18 = dict(zip(h3, t3[0]))
    assert resnet18["model"] == "ResNet-18" and float(resnet18["clean"]) == TABLE1[0][0]
    by_name = {row[0]: row[1] for row in t1}
    assert all(resnet18[m] == by_name[m] for m in ("EM", "TAP", "OPS"))
    for row in t3:
        cols = dict(zip(h3, row))
        own = float(cols["clean"])
        em, tap, ops = (lp_ud(cols[m]) for m in ("EM", "TAP", "OPS"))
        assert em[0] / own == pytest.approx(em[1], abs=0.005)  # its own clean #LP
        assert tap[0] / 3.32 == pytest.approx(tap[1], abs=0.005)  # ResNet-18's
        assert ops[0] / 3.32 == pytest.approx(ops[1], abs=0.005)


# --------------------------------------------------------------------------- errors and edge cases


def test_rows_without_sal_name_the_run():
    rows = rows_of(CLEAN)
    del rows[1]["sal"]
    with pytest.raises(ValueError, match=r"clean-seed0: epoch 2 has no SAL values"):
        sal_matrix(rows, name="clean-seed0")
    m, _ = sal_matrix(rows, name="clean-seed0", skip_missing=True)
    np.testing.assert_array_equal(m, CLEAN[[0, 2]])


def test_inconsistent_layers_are_refused():
    rows = rows_of(CLEAN)
    del rows[2]["sal"]["net.fc"]
    with pytest.raises(SalDataError, match=r"epoch 3 .*missing \['net.fc'\]"):
        sal_matrix(rows, name="r")
    with pytest.raises(SalDataError, match="not measured"):
        sal_matrix(rows_of(CLEAN), layers=["net.conv9"])
    other = rows_of(POISONED, ["a", "b", "c", "d", "e"])
    with pytest.raises(SalDataError, match="different layers"):
        ud(rows_of(CLEAN), other)
    with pytest.raises(SalDataError, match="em-run measures different layers"):
        ud_table(("clean", rows_of(CLEAN)), [("em-run", other)])
    with pytest.raises(SalDataError, match="different numbers of layers"):
        unlearnable_distance(CLEAN, POISONED[:, :3])


def test_non_finite_sal_is_refused():
    rows = rows_of(CLEAN)
    rows[0]["sal"]["net.conv2"] = float("nan")
    with pytest.raises(SalDataError, match="net.conv2.*epoch 1"):
        sal_matrix(rows, name="r")


def test_zero_clean_lp_gives_nan_with_a_warning():
    clean = np.zeros((2, 3))
    with pytest.warns(UserWarning, match="#LP = 0"):
        assert math.isnan(unlearnable_distance(clean, np.ones((2, 3)), beta=0.5))
    table = ud_table(("clean", rows_of(clean, ["a", "b", "c"])),
                     [("em", rows_of(np.ones((2, 3)), ["a", "b", "c"]))], beta=0.5)
    assert table["runs"][1]["ud"] is None
    assert any("#LP = 0" in w for w in table["warnings"])


def test_ud_table_fields():
    table = ud_table(("clean", rows_of(CLEAN, acc=0.9)), [("em", rows_of(POISONED, acc=0.2))])
    assert table["beta"] == pytest.approx(BETA)
    assert table["beta_source"] == "clean"
    np.testing.assert_allclose(table["epoch_thresholds"], MIDPOINTS)
    clean, em = table["runs"]
    assert (clean["name"], clean["role"], clean["ud"], clean["test_acc"]) == ("clean", "clean",
                                                                             None, 0.9)
    assert clean["learnable_per_epoch"] == CLEAN_COUNTS
    assert em["ud"] == pytest.approx(UD)
    assert em["lp"] == pytest.approx(2 / 3)
    assert em["learnable_per_epoch"] == POISONED_COUNTS
    np.testing.assert_allclose(em["proportion_per_epoch"], [0.2, 0.0, 0.2])
    assert ud_table(("c", rows_of(CLEAN)), [], beta=0.95)["runs"][0]["lp"] == pytest.approx(1 / 3)


# --------------------------------------------------------------------------- runs and reports


def test_load_run_and_its_errors(tmp_path):
    run = load_run(write_run(tmp_path, "clean", CLEAN, acc=0.9))
    assert run.name == "clean" and len(run.rows) == 3
    assert run.summary["test_acc"] == 0.9 and run.config["model"]["name"] == "tiny"
    write_run(tmp_path, "half", CLEAN, acc=0.9, complete=False)
    with pytest.raises(IncompleteRunError, match="half.*no summary.json.*resume"):
        load_run(tmp_path / "half")
    assert len(load_run(tmp_path / "half", require_complete=False).rows) == 3
    with pytest.raises(RunError, match="does not exist"):
        load_run(tmp_path / "nope")
    bad = write_run(tmp_path, "bad", CLEAN, acc=0.9)
    with open(bad / "metrics.jsonl", "a") as fh:
        fh.write("{not json\n")
    with pytest.raises(RunError, match="line 4"):
        load_run(bad)


def test_recompute_writes_results_and_figures(tmp_path):
    clean = write_run(tmp_path / "runs", "clean", CLEAN, acc=0.9)
    em = write_run(tmp_path / "runs", "em", POISONED, acc=0.2)
    out = tmp_path / "out"
    result = recompute(clean, [em], out_dir=out)
    assert result["runs"][1]["ud"] == pytest.approx(UD)

    stored = json.loads((out / "results.json").read_text())
    assert stored["beta"] == pytest.approx(BETA)
    assert [(r["name"], r["test_acc"], r["ud"]) for r in stored["runs"]] == [
        ("clean", 0.9, None), ("em", 0.2, pytest.approx(UD))]
    assert stored["runs"][1]["lp"] == pytest.approx(2 / 3)
    assert (stored["engine"], stored["origin"], stored["dataset"], stored["model"]) == (
        "fast", "eval", "synthetic", "tiny")

    md = (out / "results.md").read_text()
    assert "| run | test acc (%) | #LP | UD |" in md
    assert "| clean (clean) | 90.00 | 1.67 | – |" in md
    assert "| em | 20.00 | 0.67 | 0.400 |" in md
    assert "β = 0.443333" in md and "definition-faithful" in md

    with open(out / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["run"] for r in rows] == ["clean", "em"]
    assert rows[0]["ud"] == "" and float(rows[1]["ud"]) == pytest.approx(UD)
    assert rows[1]["learnable_per_epoch"] == "1 0 1"

    for name in ("sal_heatmaps.png", "learnable_counts.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*tmp"))  # atomic writes leave no temporaries

    assert recompute(clean, [em], decimals=4)["decimals"] == 4
    with pytest.raises(IncompleteRunError):
        recompute(clean, [write_run(tmp_path / "runs", "half", POISONED, acc=0.2,
                                    complete=False)])


def test_write_results_labels_the_engine(tmp_path):
    table = ud_table(("clean", rows_of(CLEAN)), [("em", rows_of(POISONED))], decimals=4)
    result = write_results(tmp_path, table, engine="compat", origin="train_running",
                           dataset="cifar10", model="resnet18", notes=["seed 0"])
    assert result["ud_label"].startswith("paper-parity")
    md = (tmp_path / "results.md").read_text()
    assert "rounded to 4 decimals" in md and "- seed 0" in md and "cifar10" in md
    assert "not exactly the paper" in describe_engine("compat", "eval")
    assert "not the paper's numbers" in describe_engine("fast", "eval")


# --------------------------------------------------------------------------- figures


def is_png(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:4] == b"\x89PNG"


def test_plots_write_pngs(tmp_path):
    runs = [load_run(write_run(tmp_path, n, m, acc=a)) for n, m, a in
            [("clean", CLEAN, 0.9), ("em", POISONED, 0.2), ("tap", CLEAN * 1e3 + 1e-4, 0.3)]]
    # values spanning decades (tap) take the symmetric-log colour scale
    assert is_png(plot_sal_heatmaps(runs, tmp_path / "fig" / "heat.png"))
    assert is_png(plot_sal_heatmaps(runs[:2], tmp_path / "heat_linear.png", scale="linear"))
    assert is_png(plot_learnable_counts(runs, BETA, tmp_path / "counts.png"))

    rng = np.random.default_rng(0)
    state = {"conv.weight": rng.normal(size=(8, 3, 3, 3)), "bn.running_mean": np.ones(8),
             "normalize.mean": np.ones(3)}
    torch = pytest.importorskip("torch")
    model = torch.nn.Linear(4, 3)
    assert is_png(plot_parameter_cdf({"clean": state, "em": model}, tmp_path / "cdf.png"))

    tasks = {"class": CLEAN, "depth": POISONED, "segm": CLEAN * 2}
    assert is_png(plot_task_similarity(tasks, tmp_path / "sim.png"))


def test_task_cosine_similarity():
    names, sim = sal_cosine_similarity({"a": [[1.0, 0.0]], "b": [[0.0, 2.0]], "c": [[3.0, 0.0]],
                                        "z": [[0.0, 0.0]]})
    assert names == ["a", "b", "c", "z"]
    np.testing.assert_allclose(sim[:3, :3], [[1, 0, 1], [0, 1, 0], [1, 0, 1]], atol=1e-12)
    assert np.isnan(sim[3]).all()
    with pytest.raises(SalDataError, match="different SAL matrix shapes"):
        sal_cosine_similarity({"a": CLEAN, "b": CLEAN[:2]})


def test_parameter_values_skip_buffers():
    from uebench.learnability.parameter_cdf import parameter_values

    state = {"w.weight": np.array([[1.0, -2.0]]), "bn.running_var": np.ones(3),
             "bn.num_batches_tracked": np.array(5), "normalize.std": np.ones(3)}
    np.testing.assert_array_equal(parameter_values(state), [1.0, -2.0])
    np.testing.assert_array_equal(parameter_values(state, absolute=True), [1.0, 2.0])
