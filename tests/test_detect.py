"""``uebench detect`` (docs/detect.md): every registered detector's contract, the verdict against
oracles on synthetic data, sample-level ranking of poisoned images, and the data handling.

Oracles: a strongly class-wise perturbation (uebench's ``random`` attack with ``classwise=True``)
is flagged while the clean set and sample-wise random noise (the control) are not; where the
labels carry no information in the images, a class-wise perturbation is the only thing that
predicts them, so a simple network's held-out accuracy jumps; in a set where half the images are
perturbed, the sample scores rank the perturbed half higher (AUROC > 0.5).
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from uebench.attacks import run_attack
from uebench.attacks.generate import generate_poison
from uebench.data import ImageSet, load_dataset
from uebench.detect import DETECTORS, detect, detect_sets, reference_indices
from uebench.detect.base import META_FIELDS, Measurement, check_options, halves, run_detector
from uebench.detect.report import threshold_for
from uebench.detect.study import detection_study, rate_interval, sample_auroc
from uebench.errors import ConfigError, PoisonValidationError, UebenchError, UnknownNameError
from uebench.runtime import Runtime

ROOT = Path(__file__).resolve().parents[1]
RT = Runtime(device="cpu", seed=0, progress=False)
STRONG = 32 / 255  # "strongly class-wise": four times the usual linf budget
SAMPLE_LEVEL = [n for n in DETECTORS.names() if DETECTORS.meta(n)["sample_scores"]]


def perturbed(images: ImageSet, attack: str, mask: torch.Tensor | None = None,
              **params) -> ImageSet:
    """``images`` with an attack's perturbation added (to the images in ``mask`` only)."""
    delta, _ = run_attack(attack, images.x, images.y, num_classes=images.num_classes, rt=RT,
                          params=params)
    x = (images.x.float() / 255 + delta).mul(255).round().clamp(0, 255).to(torch.uint8)
    if mask is not None:
        x = torch.where(mask[:, None, None, None], x, images.x)
    return ImageSet(x, images.y, images.classes, images.name, dict(images.meta))


def relabelled(images: ImageSet, seed: int) -> ImageSet:
    """The images with their labels permuted: the labels carry no information in the images."""
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    return ImageSet(images.x, images.y[perm], images.classes, images.name, dict(images.meta))


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counted half."""
    pos, neg = scores[positive][:, None], scores[~positive][None, :]
    return float((pos > neg).mean() + 0.5 * (pos == neg).mean())


@pytest.fixture(scope="module")
def tiny() -> ImageSet:
    return load_dataset("synthetic", train_size=200, seed=0).train


@pytest.fixture(scope="module")
def poisons(tmp_path_factory) -> dict[str, Path]:
    """Poison directories for 500 synthetic images: sample-wise noise and class-wise noise."""
    root = tmp_path_factory.mktemp("detect-poisons")
    specs = {"noise": ("random", {}), "classwise": ("random", {"classwise": True, "eps": STRONG})}
    for name, (attack, params) in specs.items():
        generate_poison(attack, dataset="synthetic", out=root / name, train_size=500, seed=0,
                        params=params, device="cpu", progress=False)
    return {name: root / name for name in specs}


# ----------------------------------------------------------------------------- the registry


@pytest.mark.parametrize("name", DETECTORS.names())
def test_metadata_complete(name):
    meta = DETECTORS.meta(name)
    for key, kind in META_FIELDS.items():
        assert isinstance(meta.get(key), kind), f"{name}: {key} missing or not {kind}"
    assert np.isfinite(meta["floor"]) and meta["floor"] >= 0
    for key in ("statistic", "cost", "description"):
        assert meta[key].strip(), f"{name}: empty {key}"
    page = (ROOT / "docs" / "detect.md").read_text()
    assert f"### `{name}`" in page, f"docs/detect.md has no section for {name}"


@pytest.mark.parametrize("name", DETECTORS.names())
def test_detector_contract(name, tiny):
    state = torch.get_rng_state()
    first = run_detector(name, tiny, rt=RT)
    assert torch.equal(torch.get_rng_state(), state), "the global RNG was changed"
    assert isinstance(first, Measurement) and np.isfinite(first.value)
    assert all(np.isfinite(v) for v in first.details.values())
    if DETECTORS.meta(name)["sample_scores"]:
        assert first.samples is not None and first.samples.shape == (len(tiny),)
        assert np.isfinite(first.samples).all()
    else:
        assert first.samples is None
    again = run_detector(name, tiny, rt=RT)
    assert again.value == first.value  # deterministic given the seed on CPU
    if first.samples is not None:
        assert np.array_equal(again.samples, first.samples)


def test_unknown_option_refused():
    with pytest.raises(ConfigError, match="has no option"):
        check_options("simple", {"epochz": 3})
    with pytest.raises(UnknownNameError, match="Valid detectors"):
        detect("synthetic", detectors=["nope"])


def test_halves_are_stratified_and_seeded():
    y = torch.arange(101) % 10
    a, b = halves(y, torch.Generator().manual_seed(0))
    assert len(a) + len(b) == 101 and not set(a.tolist()) & set(b.tolist())
    counts = torch.bincount(y[a], minlength=10) - torch.bincount(y[b], minlength=10)
    assert counts.abs().max() <= 1
    a2, _ = halves(y, torch.Generator().manual_seed(0))
    assert torch.equal(a, a2)


def test_threshold_rule():
    assert threshold_for(0.05, [0.10, 0.12]) == pytest.approx(0.06)  # 3 x the references' range
    assert threshold_for(0.05, [0.10, 0.101]) == 0.05  # never below the floor
    assert threshold_for(0.05, [0.10]) == 0.05


# ----------------------------------------------------------------------------- oracles


def test_classwise_flagged_clean_and_noise_not(poisons):
    clean = detect("synthetic", train_size=500, seed=0)
    noise = detect("synthetic", poison=poisons["noise"])  # size and seed from the manifest
    shortcut = detect("synthetic", train_size=500, poison=poisons["classwise"])
    assert not clean.flagged, [(r.name, r.score, r.threshold) for r in clean.results]
    assert not noise.flagged, [(r.name, r.score, r.threshold) for r in noise.results]
    assert shortcut.flagged and "template" in shortcut.flagged_by
    assert noise.n == shortcut.n == 500 and noise.attack == "random"
    for report in (clean, noise, shortcut):
        assert {r.name for r in report.results} == set(DETECTORS.names())
        assert all(len(r.references) == 2 and np.isfinite(r.score) for r in report.results)
    # the same images and seed: the references are the same clean subsets for all three
    assert [r.reference for r in clean.results] == [r.reference for r in shortcut.results]


def test_simple_flags_a_shortcut_where_labels_carry_no_image_information():
    # 1,000 synthetic images with permuted labels: clean, no network can predict them (chance);
    # a class-wise perturbation at the usual 8/255 is then the one feature that does.
    # References: the other 500 images, and the candidate's own clean images (as detect() falls
    # back to when the split is too small for disjoint references).
    full = relabelled(load_dataset("synthetic").train, seed=3)
    order = torch.randperm(len(full), generator=torch.Generator().manual_seed(4))
    candidate, other = full.subset(order[:500]), full.subset(order[500:])
    refs = [other, candidate]
    clean = detect_sets(candidate, refs, detectors=["simple"])
    shortcut = detect_sets(perturbed(candidate, "random", classwise=True), refs,
                           detectors=["simple"])
    assert not clean.flagged
    assert shortcut.flagged, shortcut.results
    assert shortcut.results[0].score > 0.1


@pytest.mark.parametrize("name", SAMPLE_LEVEL)
def test_sample_scores_rank_poisoned_images(name):
    # half of 1,000 images perturbed class-wise at 64/255, labels permuted so that the
    # perturbation is what a model can learn (the poisoned half must rank higher)
    full = relabelled(load_dataset("synthetic").train, seed=3)
    mask = torch.zeros(len(full), dtype=torch.bool)
    mask[torch.randperm(len(full), generator=torch.Generator().manual_seed(1))[:500]] = True
    half = perturbed(full, "random", mask, classwise=True, eps=64 / 255)
    got = run_detector(name, half, rt=RT)
    assert auroc(got.samples, mask.numpy()) > 0.6


@pytest.mark.parametrize("name", ["simple", "template"])
def test_sample_scores_rank_classwise_images_with_true_labels(name):
    images = load_dataset("synthetic", train_size=500, seed=0).train
    mask = torch.zeros(len(images), dtype=torch.bool)
    mask[torch.randperm(len(images), generator=torch.Generator().manual_seed(1))[:250]] = True
    half = perturbed(images, "random", mask, classwise=True, eps=STRONG)
    got = run_detector(name, half, rt=RT)
    assert auroc(got.samples, mask.numpy()) > 0.6


# ----------------------------------------------------------------------------- the data


def test_reference_subsets_disjoint_with_the_same_class_counts():
    y = torch.arange(100) % 10
    taken = torch.arange(30)
    refs = reference_indices(y, taken, seed=0, count=2)
    for ref in refs:
        assert torch.equal(torch.bincount(y[ref], minlength=10),
                           torch.bincount(y[taken], minlength=10))
        assert not set(ref.tolist()) & set(taken.tolist())
    assert not set(refs[0].tolist()) & set(refs[1].tolist())
    # too few unused images: the third reference comes from the whole split, same class counts
    third = reference_indices(y, taken, seed=0, count=3)[2]
    assert torch.equal(torch.bincount(y[third], minlength=10),
                       torch.bincount(y[taken], minlength=10))


def test_detect_deterministic_and_writes_plain_arrays(tmp_path):
    kwargs = {"train_size": 200, "seed": 1, "detectors": ["template", "simple"]}
    first = detect("synthetic", out=tmp_path / "a", **kwargs)
    second = detect("synthetic", out=tmp_path / "b", **kwargs)
    assert [r.value for r in first.results] == [r.value for r in second.results]
    report = json.loads((tmp_path / "a" / "detect.json").read_text())
    assert report["n"] == 200 and report["flagged"] is False
    assert [d["name"] for d in report["detectors"]] == ["template", "simple"]
    for d in report["detectors"]:
        assert {"value", "reference", "score", "threshold", "flagged", "seconds"} <= set(d)
    clean = load_dataset("synthetic", train_size=200, seed=1).train
    idx = np.load(tmp_path / "a" / "indices.npy", allow_pickle=False)
    assert np.array_equal(idx, clean.indices.numpy())
    for name in ("template", "simple"):
        a = np.load(tmp_path / "a" / "scores" / f"{name}.npy", allow_pickle=False)
        b = np.load(tmp_path / "b" / "scores" / f"{name}.npy", allow_pickle=False)
        assert a.shape == (200,) and a.dtype == np.float64 and np.array_equal(a, b)
    detect("synthetic", out=tmp_path / "a", **kwargs)  # an earlier report may be replaced


def test_data_that_is_neither_a_dataset_nor_a_poison(tmp_path):
    with pytest.raises(UebenchError, match="neither a dataset"):
        detect("no-such-data")
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(UebenchError, match="neither a dataset name nor a poison directory"):
        detect(tmp_path)


def test_poison_for_another_subset_or_dataset(poisons, tmp_path):
    with pytest.raises(PoisonValidationError, match="clean training set has 400"):
        detect("synthetic", train_size=400, poison=poisons["noise"])
    with pytest.raises(PoisonValidationError, match="indices differ"):
        detect("synthetic", train_size=500, seed=5, poison=poisons["noise"])
    with pytest.raises(PoisonValidationError, match="made for dataset 'synthetic'"):
        detect("digits", poison=poisons["noise"])
    with pytest.raises(UebenchError, match="already a poison directory"):
        detect(poisons["noise"], poison=poisons["noise"])
    with pytest.raises(UebenchError, match="--references 1 or more"):
        detect("synthetic", train_size=200, references=0)


def test_a_detector_without_reference_reads_its_statistic_alone(tiny, monkeypatch):
    def constant(images, *, rt):
        return Measurement(0.5)

    monkeypatch.setitem(DETECTORS._items, "constant", constant)
    monkeypatch.setitem(DETECTORS._meta, "constant", {
        **DETECTORS.meta("template"), "needs_reference": False, "floor": 0.4,
        "sample_scores": False, "defaults": {}})
    report = detect_sets(tiny, [], detectors=["constant"])
    (result,) = report.results
    assert result.reference is None and result.score == 0.5 and result.threshold == 0.4
    assert report.flagged


def test_cli_prints_the_verdict_and_writes_scores(poisons, tmp_path, capsys):
    from uebench.cli import main

    assert main(["detect", "--list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in DETECTORS.names())
    out = tmp_path / "d"
    assert main(["detect", str(poisons["classwise"]), "--detectors", "template",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "verdict: FLAGGED by template" in printed and "synthetic, 500 images" in printed
    assert np.load(out / "scores" / "template.npy", allow_pickle=False).shape == (500,)
    assert json.loads((out / "detect.json").read_text())["attack"] == "random"


# ----------------------------------------------------------------------------- the study


def test_sample_auroc_matches_the_pairwise_count():
    # oracle: the plain pairwise count of auroc() above, ties half
    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=60), 1)  # rounding makes ties
    positive = rng.random(60) < 0.4
    assert sample_auroc(scores, positive) == pytest.approx(auroc(scores, positive))
    assert sample_auroc(scores, np.zeros(60, dtype=bool)) is None


def test_rate_interval_is_the_exact_binomial_one():
    # oracle: the Clopper-Pearson bounds solve P(X <= k) = 2.5 % and P(X >= k) = 2.5 %, checked
    # with a plain binomial sum
    from math import comb

    def tail(p, k, n, upper):
        ks = range(k, n + 1) if upper else range(0, k + 1)
        return sum(comb(n, i) * p ** i * (1 - p) ** (n - i) for i in ks)

    assert rate_interval(0, 9) == (0.0, pytest.approx(1 - 0.025 ** (1 / 9)))
    low, high = rate_interval(3, 9)
    assert tail(low, 3, 9, upper=True) == pytest.approx(0.025)
    assert tail(high, 3, 9, upper=False) == pytest.approx(0.025)
    assert rate_interval(9, 9)[1] == 1.0


def test_cached_reference_values_change_nothing(tiny):
    refs = [load_dataset("synthetic", train_size=200, seed=s).train for s in (1, 2)]
    plain = detect_sets(tiny, refs, seed=3)
    cache: dict = {}
    first = detect_sets(tiny, refs, seed=3, reference_values=cache)
    again = detect_sets(tiny, refs, seed=3, reference_values=cache)  # read from the cache
    assert set(cache) == {n for n in DETECTORS.names() if DETECTORS.meta(n)["needs_reference"]}
    for a, b, c in zip(plain.results, first.results, again.results):
        assert a.references == b.references == c.references and a.score == c.score


def test_study_flags_classwise_not_clean_or_noise_and_stores_tables(poisons, tmp_path, capsys):
    from uebench.cli import main

    result = detection_study([poisons["classwise"], f"noise={poisons['noise']}"], sizes=[300, 999],
                             seeds=[0, 1], detectors=["template", "simple"])
    assert result["sizes"] == [300, 500]  # a size above the poison's images is all of them
    summary = {s["poison"]: s for s in result["summary"]}
    assert summary["classwise"]["rate"] == 1.0 and summary["classwise"]["cases"] == 4
    assert summary["classwise"]["interval"][1] == 1.0 and summary["classwise"]["interval"][0] > 0.3
    # the random-noise control is not flagged more often than the clean twins
    assert summary["noise"]["rate"] <= summary["clean"]["rate"] + 0.25
    assert len(result["samples"]) == 4  # two poisons x two seeds, at 500 images
    assert summary["classwise"]["auroc"]["template"] > 0.6
    assert {r["size"] for r in result["rows"]} == {300, 500}
    # the command line stores the result (values, command, tables) where --results says
    assert main(["detect-study", str(poisons["classwise"]), "--sizes", "300", "--seeds", "0",
                 "--detectors", "template", "--save", "detect/t", "--results", str(tmp_path),
                 "--quiet"]) == 0
    stored = json.loads((tmp_path / "detect" / "t.json").read_text())
    assert stored["command"].startswith("uebench detect-study")
    assert stored["tables"]["rates"]["rows"][0][0] == "clean"
    assert "| classwise |" in capsys.readouterr().out


def test_study_refuses_poisons_of_other_images_and_bad_ratios(poisons, tmp_path):
    other = tmp_path / "other"
    generate_poison("random", dataset="synthetic", out=other, train_size=400, seed=0,
                    device="cpu", progress=False)
    with pytest.raises(UebenchError, match="run one study per subset"):
        detection_study([poisons["noise"], other], sizes=[100], seeds=[0])
    with pytest.raises(UebenchError, match="name them, LABEL=DIR"):
        detection_study([poisons["noise"], f"noise={poisons['classwise']}"], sizes=[100])
    with pytest.raises(UebenchError, match="--ratio must be inside"):
        detection_study([poisons["noise"]], ratio=1.0)


def test_nothing_but_the_cli_imports_detect():
    # the command line registers `uebench detect`; the bench may read verdicts later
    src = ROOT / "src" / "uebench"
    bad = []
    for path in src.rglob("*.py"):
        rel = path.relative_to(src)
        if rel.parts[0] in ("detect", "bench", "commands") or str(rel) == "cli.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            bad += [f"{rel}: {n}" for n in names if n.startswith("uebench.detect")]
    assert not bad
