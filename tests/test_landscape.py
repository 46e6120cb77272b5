"""Loss-landscape explanations: trajectory recording, PCA, batched grid losses, CDFs, plot_all."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from uebench import Runtime, get_model, load_dataset
from uebench.config import TrainCfg, resolve_run_cfg
from uebench.errors import UebenchError
from uebench.landscape import (
    BASES,
    TrajectoryRecorder,
    evaluate_points,
    evaluate_points_loop,
    gram_pca,
    landscape,
    load_trajectory,
    path_pca,
    record_run,
)
from uebench.landscape.cdf import layer_groups
from uebench.landscape.directions import random_directions
from uebench.landscape.pca import dense_blocks
from uebench.landscape.plot_all import plot_all
from uebench.train import fit
from uebench.train.trajectory import default_every, steps_per_epoch
from uebench.train.trajectory_store import iter_parameter_blocks, read_index

PNG, PDF = b"\x89PNG", b"%PDF"


# --------------------------------------------------------------------------- PCA


def _planted(t: int = 40, d: int = 60, seed: int = 0):
    """A path final + a(s) u1 + b(s) u2 + tiny noise, with var(a) >> var(b)."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, 2, generator=g, dtype=torch.float64))
    u1, u2 = q[:, 0], q[:, 1]
    s = torch.linspace(0, 1, t, dtype=torch.float64)
    a, b = -5.0 * (1 - s) ** 2, 0.8 * torch.sin(3 * s)
    # PCA finds u1, u2 exactly only if the centred coefficients are uncorrelated
    ac, bc = a - a.mean(), b - b.mean()
    b = bc - (ac @ bc) / (ac @ ac) * ac
    final = torch.randn(d, generator=g, dtype=torch.float64)
    noise = 1e-4 * torch.randn(t, d, generator=g, dtype=torch.float64)
    return final + a[:, None] * u1 + b[:, None] * u2 + noise, final, u1, u2


@pytest.mark.parametrize("method", ["sklearn", "gram"])
def test_pca_recovers_planted_directions(method):
    matrix, final, u1, u2 = _planted()
    result = path_pca(matrix, final, n_directions=4, method=method)
    assert abs(float(result.directions[0] @ u1)) > 0.999
    assert abs(float(result.directions[1] @ u2)) > 0.999
    ratio = result.explained_variance_ratio
    assert ratio.shape == (40,) and ratio.sum() == pytest.approx(1.0)
    assert ratio[0] > ratio[1] > 100 * ratio[2]
    # orthonormal directions; path coordinates = projection of (snapshot - final)
    gram = result.directions @ result.directions.T
    assert torch.allclose(gram[:2, :2], torch.eye(2, dtype=torch.float64), atol=1e-9)
    diff = (matrix - final).numpy()
    assert np.allclose(result.coords, diff @ result.directions.numpy().T, atol=1e-9)
    assert result.coords[0, 0] <= 0 and result.coords[0, 1] <= 0  # sign convention


def test_pca_routes_agree():
    matrix, final, _, _ = _planted(t=25, d=300, seed=3)
    dense = path_pca(matrix, final, method="sklearn")
    diff = matrix - final
    gram = gram_pca(dense_blocks(diff, block_cols=37), tuple(diff.shape), n_directions=4)
    assert np.allclose(dense.explained_variance_ratio, gram.explained_variance_ratio, atol=1e-10)
    assert torch.allclose(dense.directions[:2], gram.directions[:2], atol=1e-8)
    assert np.allclose(dense.coords[:, :2], gram.coords[:, :2], atol=1e-8)


# --------------------------------------------------------------------------- batched grid


@pytest.mark.parametrize("name,shape", [("tiny", (3, 8, 8)), ("lenet5", (1, 28, 28))])
def test_batched_grid_equals_loop_fp64(name, shape):
    torch.manual_seed(0)
    model = get_model(name, in_channels=shape[0], image_size=shape[1:]).double()
    model.train()  # evaluation must switch to eval mode (BatchNorm running statistics)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    weights = {n: p.detach() for n, p in model.named_parameters() if not n.endswith("bias")}
    dirs = random_directions(weights, 2, seed=1, ignore_1d=False)
    coeffs = torch.cartesian_prod(torch.linspace(-1, 1, 3), torch.linspace(-0.5, 0.5, 3))
    g = torch.Generator().manual_seed(2)
    x = torch.rand(40, *shape, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (40,), generator=g)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    # a tiny budget forces several point chunks; batch 16 forces several data batches
    batched = evaluate_points(model, weights, dirs, coeffs, x, y, batch_size=16, memory_mb=0.05)
    loop = evaluate_points_loop(model, weights, dirs, coeffs, x, y, batch_size=16)
    assert batched.shape == (9,)
    assert torch.allclose(batched, loop, rtol=1e-12, atol=1e-12)
    assert len(set(batched.tolist())) == 9  # the points really differ
    assert model.training
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())


def test_filter_normalized_directions():
    model = get_model("tiny", in_channels=3, image_size=8)
    weights = dict(model.named_parameters())
    (d1,), (d2,) = random_directions(weights, 1, seed=5), random_directions(weights, 1, seed=5)
    for name, w in weights.items():
        assert torch.equal(d1[name], d2[name])  # deterministic given the seed
        if w.dim() <= 1:
            assert not d1[name].any()  # biases and BatchNorm ignored (--xignore biasbn)
        else:
            w_norm = w.detach().reshape(w.shape[0], -1).norm(dim=1)
            d_norm = d1[name].reshape(w.shape[0], -1).norm(dim=1)
            assert torch.allclose(w_norm, d_norm, rtol=1e-5)


# --------------------------------------------------------------------------- recording


def _data():
    s = load_dataset("synthetic", train_size=160, test_size=40)
    return s.train, s.test


def _train(run_dir, recorder=None, crash_step=None, epochs=3):
    train, test = _data()
    torch.manual_seed(0)
    model = get_model("tiny", in_channels=3, image_size=16)
    cfg = TrainCfg(epochs=epochs, batch_size=32, lr=0.05, schedule="cosine", augment="crop_flip")

    class Crash:
        def on_step(self, model, step, epoch):
            if step == crash_step:
                raise KeyboardInterrupt

        def on_epoch_end(self, epoch, step):
            pass

        def on_resume(self, epoch, step):
            pass

    hooks = [h for h in (recorder, Crash()) if h is not None]
    if recorder is not None:
        recorder.begin(model)
    fit(model, train.x, train.y, cfg=cfg, rt=Runtime("cpu", 0, False), x_test=test.x,
        y_test=test.y, run_dir=run_dir, step_hooks=hooks)
    return model


def _recorder(run_dir, memory_mb=256.0, **kw):
    return TrajectoryRecorder(run_dir, every=3, steps_per_epoch=5, memory_mb=memory_mb, **kw)


def test_recording_leaves_training_bit_identical(tmp_path):
    plain = _train(tmp_path / "plain")
    recorded = _train(tmp_path / "rec", _recorder(tmp_path / "rec"))
    for (name, a), b in zip(plain.state_dict().items(), recorded.state_dict().values()):
        assert torch.equal(a, b), name
    traj = load_trajectory(tmp_path / "rec")
    # step 0, every 3rd step and every epoch end (5 steps per epoch, 3 epochs)
    assert traj.steps.tolist() == [0, 3, 5, 6, 9, 10, 12, 15]
    assert traj.matrix.shape == (8, sum(p.numel() for p in recorded.parameters()))
    final = torch.cat([p.detach().reshape(-1) for p in recorded.parameters()])
    assert torch.equal(traj.matrix[-1], final)
    assert traj.names == [n for n, _ in recorded.named_parameters()]


@pytest.mark.parametrize("crash_step", [13, 4])  # in epoch 3 (after checkpoints), in epoch 1
def test_resumed_recording_equals_uninterrupted(tmp_path, crash_step):
    _train(tmp_path / "a", _recorder(tmp_path / "a"))
    # a tiny buffer writes a chunk per snapshot, so the crash leaves snapshots past the checkpoint
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "b", _recorder(tmp_path / "b", memory_mb=1e-6), crash_step=crash_step)
    assert load_trajectory(tmp_path / "b").steps.max() > (crash_step - 1) // 5 * 5
    _train(tmp_path / "b", _recorder(tmp_path / "b", memory_mb=1e-6))
    a, b = load_trajectory(tmp_path / "a"), load_trajectory(tmp_path / "b")
    assert a.steps.tolist() == b.steps.tolist()
    assert torch.equal(a.matrix, b.matrix)
    assert len(read_index(tmp_path / "b")["chunks"]) == len(a.steps)
    files = sorted(p.name for p in (tmp_path / "b" / "trajectory").glob("chunk-*"))
    assert len(files) == len(a.steps)  # no orphan chunk left behind


def test_layer_restriction_and_column_blocks(tmp_path):
    rec = _recorder(tmp_path / "r", layers=["net.conv2", "net.fc"])
    _train(tmp_path / "r", rec, epochs=1)
    traj = load_trajectory(tmp_path / "r")
    assert traj.names == ["net.conv2.weight", "net.fc.weight", "net.fc.bias"]
    blocks = list(iter_parameter_blocks(tmp_path / "r", max_elements=50))
    assert len(blocks) > 3
    rebuilt = torch.zeros(traj.matrix.shape, dtype=torch.float64)
    for cols, block in blocks:
        rebuilt[:, cols] = block
    assert torch.equal(rebuilt, traj.matrix.double())


def test_recorder_refuses_bad_input(tmp_path):
    model = get_model("tiny", in_channels=3, image_size=16)
    with pytest.raises(UebenchError, match="no parameter matches"):
        TrajectoryRecorder(tmp_path, every=2, layers=["net.nothing"]).begin(model)
    TrajectoryRecorder(tmp_path, every=2).begin(model)
    with pytest.raises(UebenchError, match="other settings.*every"):
        TrajectoryRecorder(tmp_path, every=3).begin(model)
    with pytest.raises(UebenchError, match="started without a recorder"):
        TrajectoryRecorder(tmp_path / "new", every=2).on_resume(2, 10)


def test_resuming_an_unrecorded_run_is_refused(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, crash_step=13)  # two epochs trained and checkpointed, no recorder
    with pytest.raises(UebenchError, match="started without a recorder"):
        _train(tmp_path, _recorder(tmp_path))


def test_default_interval():
    assert steps_per_epoch(4000, 64, drop_last=False) == 63
    assert 100 <= 630 // default_every(630) <= 200
    assert 100 <= 39100 // default_every(39100) <= 200  # ResNet-18, 50 epochs x 782 steps
    assert default_every(10) == 1


# --------------------------------------------------------------------------- runs, plot_all


@pytest.fixture(scope="module")
def evaluation_dir(tmp_path_factory):
    """An evaluation-like directory: runs/clean and runs/ops with SAL and trajectories."""
    from uebench.attacks.generate import generate_poison

    root = tmp_path_factory.mktemp("landscape")
    cfg = resolve_run_cfg(dataset="synthetic", model="tiny", train_size=120, test_size=40,
                          epochs=2, overrides=["sal.enabled=true", "sal.options.probe_size=64"])
    record_run(cfg, root / "runs" / "clean", every=2, progress=False)
    generate_poison("ops", dataset="synthetic", out=root / "poisons" / "ops", train_size=120,
                    progress=False)
    ops = dataclasses.replace(cfg, poison=str(root / "poisons" / "ops"))
    record_run(ops, root / "runs" / "ops", every=2, progress=False)
    return root


def test_plot_all_writes_every_figure(evaluation_dir):
    options = {"grid": 5, "n_samples": 32, "interpolation_points": 5}
    report = plot_all(evaluation_dir, landscape_options=options)
    out = evaluation_dir / "figures"
    expected = ["sal_heatmaps.png", "learnable_counts.png", "parameter_cdf.png"] + [
        f"{stem}.{fmt}" for fmt in ("png", "pdf")
        for stem in ("parameter_cdf_layers", "landscape_pca_pc1_pc2", "landscape_pca_pc3_pc4",
                     "interpolation", "path_loss", "explained_variance")]
    for name in expected:
        assert str(out / name) in report["files"], name
        assert (out / name).read_bytes().startswith(PDF if name.endswith("pdf") else PNG), name
    for path in report["files"]:  # a file offered as PDF is a PDF
        assert Path(path).read_bytes().startswith(PDF if path.endswith(".pdf") else PNG)
    result = json.loads((out / "landscape.json").read_text())
    assert [r["name"] for r in result["runs"]] == ["clean", "ops"]
    assert np.asarray(result["runs"][0]["planes"][0]["loss"]).shape == (5, 5)
    stamp = (out / "landscape.json").stat().st_mtime_ns
    # redraw from the cache only (PNG only: matplotlib's PDF backend is the slow part)
    again = plot_all(evaluation_dir, compute_landscape=False, formats=("png",))
    assert (out / "landscape.json").stat().st_mtime_ns == stamp
    assert sorted(again["files"]) == sorted(f for f in report["files"] if f.endswith(".png"))


@pytest.mark.parametrize("basis", BASES.names())
def test_landscape_contract(evaluation_dir, tmp_path, basis):
    runs = [evaluation_dir / "runs" / "clean", evaluation_dir / "runs" / "ops"]
    result = landscape(runs, tmp_path, basis=basis, grid=4, n_samples=16,
                       interpolation_points=7, plot=False)
    planes = result["planes"]
    assert [p["axes"] for p in planes] == [[0, 1], [2, 3]]
    for run in result["runs"]:
        assert len(run["steps"]) == len(run["planes"][0]["coords"])
        for plane in run["planes"]:
            loss = np.asarray(plane["loss"])
            assert loss.shape == (4, 4) and np.isfinite(loss).all() and (loss > 0).all()
        # the path ends at the final weights = the centre of every plane
        assert np.allclose(run["planes"][0]["coords"][-1], 0.0, atol=1e-5)
        # t = 1 of the interpolation and the last snapshot are the final model, t = 0 and the
        # first snapshot the initial one (every parameter was recorded)
        t, loss = run["interpolation"]["t"], run["interpolation"]["loss"]
        assert loss[t.index(1.0)] == pytest.approx(run["final_loss"], rel=1e-5)
        assert run["path_loss"][-1] == pytest.approx(run["final_loss"], rel=1e-5)
        assert run["path_loss"][0] == pytest.approx(loss[t.index(0.0)], rel=1e-5)
    assert planes[0]["xs"] == sorted(planes[0]["xs"])  # one shared axis for every run


def test_bad_input_gives_clear_errors(evaluation_dir, tmp_path):
    clean = evaluation_dir / "runs" / "clean"
    bare = tmp_path / "bare"
    cfg = resolve_run_cfg(dataset="synthetic", model="linear", train_size=60, test_size=20,
                          epochs=1)
    record_run(cfg, bare, every=1, progress=False)
    with pytest.raises(UebenchError, match="different models"):
        landscape([clean, bare], tmp_path / "x", plot=False)
    (bare / "trajectory" / "index.json").unlink()
    with pytest.raises(UebenchError, match="has no trajectory"):
        landscape([bare], tmp_path / "y")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UebenchError, match="no run directories"):
        plot_all(tmp_path / "empty")
    with pytest.raises(UebenchError, match="not a training run directory"):
        landscape([tmp_path], tmp_path / "z")
    with pytest.raises(UebenchError, match="unknown landscape basis"):
        landscape([clean], tmp_path / "z", basis="nope")


def test_layer_groups():
    lenet = get_model("lenet5", in_channels=1, image_size=28).state_dict()
    assert list(layer_groups(lenet)) == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    resnet = layer_groups(get_model("resnet18", width=0.25).state_dict())
    assert list(resnet)[:3] == ["conv1", "bn1", "layer1.0"] and len(resnet) == 11
    assert not any("running" in k for keys in resnet.values() for k in keys)
    linear = get_model("linear", in_channels=1, image_size=(1, 12)).state_dict()
    assert list(layer_groups(linear)) == ["net.1"]


def test_streamed_path_equals_in_memory(evaluation_dir, tmp_path, monkeypatch):
    """Trajectories too big for memory take the Gram route over blocks read from disk."""
    from uebench.landscape import bases

    runs = [evaluation_dir / "runs" / "clean"]
    kwargs = {"grid": 3, "n_samples": 16, "interpolation_points": 0, "plot": False}
    dense = landscape(runs, tmp_path / "dense", **kwargs)
    monkeypatch.setattr(bases, "DENSE_LOAD_BYTES", 0)
    streamed = landscape(runs, tmp_path / "streamed", **kwargs)
    a, b = dense["runs"][0], streamed["runs"][0]
    assert a["steps"] == b["steps"] and "path_loss" not in b
    assert np.allclose(a["explained_variance_ratio"], b["explained_variance_ratio"], atol=1e-9)
    for pa, pb in zip(a["planes"], b["planes"]):
        assert np.allclose(pa["coords"], pb["coords"], atol=1e-6)
        assert np.allclose(pa["loss"], pb["loss"], rtol=1e-5)


def test_landscape_table_reads_the_experiment(tmp_path):
    # the numbers findings §7 quotes, checked against a plain reading of the files they come from
    from uebench.landscape.experiments import LANDSCAPE_HEADER, landscape_table, run_toy
    from uebench.utils.io import read_json

    out = tmp_path / "toy"
    run_toy(out, epochs=2, grid=5, progress=False)
    header, rows = landscape_table(out)
    assert header == LANDSCAPE_HEADER and [r[0] for r in rows] == ["clean", "ops"]
    assert all("|" not in h for h in header)  # a Markdown table cell
    summary = read_json(out / "summary.json")["runs"]
    clean_view = {r["name"]: r for r in
                  read_json(out / "figures" / "clean-data" / "landscape.json")["runs"]}
    for row in rows:
        name = row[0]
        assert float(row[1]) == pytest.approx(summary[name]["test_acc"], abs=5e-4)
        state = torch.load(out / "runs" / name / "checkpoint.pt", weights_only=True)["model"]
        w = np.concatenate([state[k].abs().numpy().ravel() for k in ("net.1.weight", "net.1.bias")])
        lower_median = np.sort(w)[(w.size - 1) // 2]  # torch.median's convention
        assert float(row[8]) == pytest.approx(float(lower_median), rel=2e-3)
        assert float(row[9]) == pytest.approx(float(w.max()), rel=2e-3)
        path = clean_view[name]["path_loss"]
        assert float(row[7].split()[0]) == pytest.approx(min(path), rel=2e-3)
    # OPS fits its own data better than the clean run fits the clean data
    assert float(rows[1][2]) > float(rows[0][2])
