"""The fault suite: every kind of bad input or broken environment gets one clear message naming the
problem and the fix, exit status 2, no traceback, and nothing half-written or mixed.

Each test is one *kind* of fault, registered with :func:`kind`; docs/faults.md lists every kind
(checked below), so the page and the suite cannot drift apart.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from uebench.cli import main

KINDS: list[tuple[str, str, str]] = []  # (category, what, test name)
DATA = ["--dataset", "synthetic", "--train-size", "64", "--test-size", "32", "--quiet"]
TRAIN = ["train", *DATA, "--model", "tiny", "--epochs", "1"]
GEN = ["poison", "generate", "--attack", "random", *DATA]


def kind(category: str, what: str):
    def deco(fn):
        KINDS.append((category, what, fn.__name__))
        return fn

    return deco


def cli(capsys, args: list[str], code: int = 2) -> str:
    """Run the CLI in-process; the exit status must be ``code`` and stderr free of tracebacks."""
    got = main([str(a) for a in args])
    err = capsys.readouterr().err
    assert got == code, err
    assert "Traceback" not in err
    return err


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A finished tiny run and a poison, copied by the tests that damage them."""
    root = tmp_path_factory.mktemp("made")
    assert main([*TRAIN, "--out", str(root / "run"), "train.snapshots=true"]) == 0
    assert main([*GEN, "--out", str(root / "poison")]) == 0
    return root


def copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# ----------------------------------------------------------------------------- file system


@kind("file system", "train --out is an existing file")
def test_train_out_is_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert "is a file" in cli(capsys, [*TRAIN, "--out", tmp_path / "f"])


@kind("file system", "poison generate --out is an existing file")
def test_poison_out_is_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert "is a file" in cli(capsys, [*GEN, "--out", tmp_path / "f"])


@kind("file system", "train --out is a non-empty directory of other files")
def test_train_out_foreign(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("precious")
    assert "is not empty" in cli(capsys, [*TRAIN, "--out", tmp_path])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]  # nothing written


@kind("file system", "poison generate --out is a non-empty directory of other files")
def test_poison_out_foreign(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("precious")
    assert "is not empty" in cli(capsys, [*GEN, "--out", tmp_path])


@kind("file system", "evaluate --out is a non-empty directory of other files")
def test_evaluate_out_foreign(made, tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("precious")
    err = cli(capsys, ["evaluate", *DATA, "--model", "tiny", "--epochs", "1", "--poisons",
                       made / "poison", "--out", tmp_path])
    assert "is not empty" in err


@kind("file system", "the output file system is read-only")
def test_read_only(tmp_path, capsys, monkeypatch):
    def refuse(*_a, **_k):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "run"))

    monkeypatch.setattr(os, "replace", refuse)
    assert "read-only" in cli(capsys, [*TRAIN, "--out", tmp_path / "run"])


@kind("file system", "permission denied on the output directory")
def test_permission_denied(tmp_path, capsys, monkeypatch):
    real_mkdir = Path.mkdir

    def refuse(self, *a, **k):
        if self == tmp_path / "run":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", refuse)
    assert "permission denied" in cli(capsys, [*TRAIN, "--out", tmp_path / "run"])


@kind("file system", "the disk fills up while a run is checkpointing; re-running resumes")
def test_disk_full_then_resume(tmp_path, capsys, monkeypatch):
    import uebench.train.checkpoint as loop

    real = loop.atomic_torch_save
    calls = {"n": 0}

    def full(obj, path):
        calls["n"] += 1
        if calls["n"] == 2:  # the second epoch's checkpoint
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(obj, path)

    monkeypatch.setattr(loop, "atomic_torch_save", full)
    args = [*TRAIN[:-1], "3", "--out", tmp_path / "run"]
    assert "disk is full" in cli(capsys, args)
    assert not (tmp_path / "run" / "summary.json").exists()  # never looks complete
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["epoch"] == 1
    monkeypatch.setattr(loop, "atomic_torch_save", real)
    cli(capsys, args, code=0)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]


@kind("file system", "interrupted with Ctrl-C: status 130 and how to resume")
def test_keyboard_interrupt(tmp_path, capsys, monkeypatch):
    import uebench.train.run as run

    def interrupt(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "fit", interrupt)
    assert "re-run the same command to resume" in cli(capsys, [*TRAIN, "--out", tmp_path / "r"],
                                                        code=130)


@kind("file system", "stopped with SIGTERM: one line, a non-zero status and how to resume")
def test_sigterm(tmp_path, capsys, monkeypatch):
    import signal
    import time

    import uebench.train.run as run

    def terminated(*_a, **_k):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)  # the handler raises as soon as the signal is delivered
        raise AssertionError("SIGTERM was not handled")

    monkeypatch.setattr(run, "fit", terminated)
    err = cli(capsys, [*TRAIN, "--out", tmp_path / "r"], code=143)
    assert "interrupted (SIGTERM)" in err and "re-run the same command to resume" in err
    assert len(err.strip().splitlines()) == 1


@kind("file system", "torch.save fails on a full disk (\"unexpected pos\"): named as a full disk")
def test_disk_full_torch_save(tmp_path, capsys, monkeypatch):
    def full(obj, path, *a, **k):
        Path(path).write_bytes(b"PK\x03\x04")  # torch leaves a partial file behind
        raise RuntimeError("[enforce fail at inline_container.cc:783] . PytorchStreamWriter "
                           "failed writing file data/3: file write failed; unexpected pos 4096 "
                           "vs 4030")

    monkeypatch.setattr(torch, "save", full)
    err = cli(capsys, [*TRAIN, "--out", tmp_path / "run"])
    assert "disk is full" in err and "--out elsewhere" in err and "unexpected pos" not in err
    run = tmp_path / "run"
    assert not (run / "summary.json").exists() and not (run / "checkpoint.pt").exists()
    assert not list(run.glob(".*.tmp"))  # the partial temporary file was removed


@kind("file system", "a refused command leaves no empty --out directory behind")
def test_refused_leaves_no_out(made, tmp_path, capsys):
    np.save(tmp_path / "big.npy", np.full((64, 3, 16, 16), 1e12, dtype=np.float32))
    cli(capsys, _array_import(tmp_path / "big.npy", tmp_path / "q"))  # refused after locking
    assert not (tmp_path / "q").exists()
    cli(capsys, ["ud", "--clean", made / "run", "--poisoned", made / "run", "--beta", "-1",
                 "--out", tmp_path / "u"])
    assert not (tmp_path / "u").exists()
    (tmp_path / "mine").mkdir()  # a directory the user made stays, even when empty
    cli(capsys, _array_import(tmp_path / "big.npy", tmp_path / "mine"))
    assert (tmp_path / "mine").is_dir()


# ----------------------------------------------------------------------------- corrupt files


def _damage(path: Path, text: str = "garbage{") -> None:
    path.write_bytes(text.encode())


@kind("corrupt resume file", "checkpoint.pt is truncated")
def test_corrupt_checkpoint(made, tmp_path, capsys):
    run = copy(made / "run", tmp_path / "run")
    (run / "summary.json").unlink()
    data = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    err = cli(capsys, [*TRAIN, "--out", run, "train.snapshots=true"])
    assert "checkpoint.pt is corrupt" in err and "delete it" in err


@kind("corrupt resume file", "metrics.jsonl is not JSON lines")
def test_corrupt_metrics(made, tmp_path, capsys):
    run = copy(made / "run", tmp_path / "run")
    (run / "summary.json").unlink()
    _damage(run / "metrics.jsonl")
    assert "metrics.jsonl is corrupt" in cli(capsys, [*TRAIN, "--out", run,
                                                      "train.snapshots=true"])


@kind("corrupt resume file", "config.yaml of a run is not YAML")
def test_corrupt_config(made, tmp_path, capsys):
    run = copy(made / "run", tmp_path / "run")
    _damage(run / "config.yaml", "a: [")
    assert "config.yaml is corrupt" in cli(capsys, [*TRAIN, "--out", run])


@kind("corrupt resume file", "summary.json of a finished run is broken")
def test_corrupt_summary(made, tmp_path, capsys):
    run = copy(made / "run", tmp_path / "run")
    _damage(run / "summary.json")
    assert "summary.json is corrupt" in cli(capsys, [*TRAIN, "--out", run,
                                                     "train.snapshots=true"])


@kind("corrupt resume file", "identity.json of a run is broken")
def test_corrupt_identity(made, tmp_path, capsys):
    run = copy(made / "run", tmp_path / "run")
    _damage(run / "identity.json")
    assert "identity.json is corrupt" in cli(capsys, [*TRAIN, "--out", run,
                                                      "train.snapshots=true"])


@kind("corrupt resume file", "a checkpoint left by a run with other settings (orphan)")
def test_orphan_checkpoint(made, tmp_path, capsys):
    run = copy(made / "run", tmp_path / "run")
    for name in ("summary.json", "config.yaml", "identity.json"):
        (run / name).unlink()
    err = cli(capsys, [*TRAIN, "--out", run, "train.lr=0.01", "train.snapshots=true"])
    assert "belongs to a run with another config" in err


@kind("corrupt resume file", "an attack's saved state (EM surrogate) is broken")
def test_corrupt_attack_state(tmp_path, capsys, monkeypatch):
    import uebench.attacks.em as em

    out = tmp_path / "em"
    args = ["poison", "generate", "--attack", "em", *DATA, "--out", out, "surrogate=tiny",
            "steps=1", "train_steps=1", "batch_size=32", "max_rounds=2", "stop_acc=1.0"]
    real, calls = em.evaluate, []

    def crash(*a, **k):  # stop in round 2, after round 1's state was saved
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(em, "evaluate", crash)
    cli(capsys, args, code=130)
    monkeypatch.setattr(em, "evaluate", real)
    state = next((out / ".work").rglob("state.pt"))
    _damage(state)
    assert "state.pt is corrupt" in cli(capsys, args)


@kind("corrupt resume file", "a per-epoch snapshot is broken (uebench sal)")
def test_corrupt_snapshot(made, tmp_path, capsys):
    run = copy(made / "run", tmp_path / "run")
    _damage(run / "snapshots" / "epoch-0001.safetensors")
    err = cli(capsys, ["sal", run, "--tag", "t", "--quiet", "--option", "probe_size=16"])
    assert "epoch-0001.safetensors is corrupt" in err


@kind("corrupt resume file", "a post-hoc SAL file is broken")
def test_corrupt_sal_tag(made, tmp_path, capsys):
    run = copy(made / "run", tmp_path / "run")
    cli(capsys, ["sal", run, "--tag", "t", "--quiet", "--option", "probe_size=16"], code=0)
    _damage(run / "sal" / "t.jsonl")
    assert "t.jsonl is corrupt" in cli(capsys, ["ud", "--clean", run, "--poisoned", run,
                                                "--sal-tag", "t"])


@kind("corrupt resume file", "a post-hoc SAL tag still being measured in one of the runs")
def test_partial_sal_tag(tmp_path, capsys):
    run, other = tmp_path / "run", tmp_path / "other"
    for out in (run, other):  # two epochs, so that one run can lack one
        assert main([*TRAIN, "--epochs", "2", "--out", str(out), "train.snapshots=true"]) == 0
    cli(capsys, ["sal", run, "--tag", "t", "--quiet", "--option", "probe_size=16"], code=0)
    cli(capsys, ["sal", other, "--tag", "t", "--epochs", "1", "--quiet", "--option",
                 "probe_size=16"], code=0)
    err = cli(capsys, ["ud", "--clean", run, "--poisoned", other, "--sal-tag", "t"])
    assert "covers epochs" in err and "uebench sal" in err


# ----------------------------------------------------------------------------- poison files


@kind("poison file", "manifest.json is not JSON")
def test_manifest_not_json(made, tmp_path, capsys):
    poison = copy(made / "poison", tmp_path / "p")
    _damage(poison / "manifest.json")
    err = cli(capsys, [*TRAIN, "--poison", poison, "--out", tmp_path / "r"])
    assert "manifest.json is corrupt" in err


@kind("poison file", "manifest.json lacks fields loading needs")
def test_manifest_missing_fields(made, tmp_path, capsys):
    poison = copy(made / "poison", tmp_path / "p")
    manifest = json.loads((poison / "manifest.json").read_text())
    del manifest["budget"]
    (poison / "manifest.json").write_text(json.dumps(manifest))
    assert "mistyped field(s) ['budget']" in cli(capsys, [*TRAIN, "--poison", poison, "--out",
                                                          tmp_path / "r"])


@kind("poison file", "poison.safetensors replaced after generation (sha256 mismatch)")
def test_tensors_replaced(made, tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    poison = copy(made / "poison", tmp_path / "p")
    tensors = load_file(str(poison / "poison.safetensors"))
    tensors["delta"] = torch.zeros_like(tensors["delta"])
    save_file(tensors, str(poison / "poison.safetensors"))
    assert "sha256 differs" in cli(capsys, [*TRAIN, "--poison", poison, "--out", tmp_path / "r"])


@kind("poison file", "labels or indices stored as non-integer tensors")
def test_float_labels(made, tmp_path, capsys):
    import hashlib

    from safetensors.torch import load_file, save_file

    from uebench.poisons.manifest import integrity_hash

    poison = copy(made / "poison", tmp_path / "p")
    tensors = load_file(str(poison / "poison.safetensors"))
    tensors["labels"] = tensors["labels"].float()
    save_file(tensors, str(poison / "poison.safetensors"))
    manifest = json.loads((poison / "manifest.json").read_text())
    manifest["sha256"] = hashlib.sha256((poison / "poison.safetensors").read_bytes()).hexdigest()
    manifest["integrity"] = integrity_hash(manifest)  # resealed, so the label check is reached
    (poison / "manifest.json").write_text(json.dumps(manifest))
    assert "1-D integer tensor" in cli(capsys, [*TRAIN, "--poison", poison, "--out",
                                                tmp_path / "r"])


@kind("poison file", "a poison made for another subset of the data")
def test_poison_other_subset(made, tmp_path, capsys):
    err = cli(capsys, ["evaluate", "--dataset", "synthetic", "--train-size", "48", "--quiet",
                       "--model", "tiny", "--epochs", "1", "--poisons", made / "poison",
                       "--out", tmp_path / "e"])
    assert "clean training set has 48" in err
    assert not (tmp_path / "e" / "runs").exists()  # refused before any training


@kind("poison file", "uebench detect on a directory that is neither a poison nor a dataset")
def test_detect_not_a_poison(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("x")
    err = cli(capsys, ["detect", tmp_path])
    assert "neither a dataset name nor a poison directory" in err
    assert "uebench poison generate" in err and len(err.strip().splitlines()) == 1
    err = cli(capsys, ["detect", "synthetic", "--poison", tmp_path])
    assert "no manifest.json" in err


@kind("poison file", "uebench detect --poison made for another dataset or subset")
def test_detect_poison_other_data(made, tmp_path, capsys):
    err = cli(capsys, ["detect", "digits", "--poison", made / "poison"])
    assert "made for dataset 'synthetic'" in err and "--train-size 64" in err
    err = cli(capsys, ["detect", "synthetic", "--train-size", "48", "--poison", made / "poison",
                       "--out", tmp_path / "d"])
    assert "clean training set has 48" in err and "--train-size 64" in err
    assert not (tmp_path / "d").exists()  # refused before anything was written


@kind("poison file", "uebench detect-study given poisons of different images, or bad --sizes")
def test_detect_study_mixed_poisons(made, tmp_path, capsys):
    assert main([*GEN[:-1], "--train-size", "48", "--quiet", "--out",
                 str(tmp_path / "other")]) == 0
    capsys.readouterr()
    err = cli(capsys, ["detect-study", made / "poison", tmp_path / "other", "--quiet"])
    assert "run one study per subset" in err and len(err.strip().splitlines()) == 1
    err = cli(capsys, ["detect-study", made / "poison", "--sizes", "500,x"])
    assert "--sizes takes comma-separated integers" in err
    err = cli(capsys, ["detect-study", tmp_path / "nothing"])
    assert "nothing" in err


def _edit_manifest(poison: Path, **changes) -> None:
    manifest = json.loads((poison / "manifest.json").read_text())
    for key, value in changes.items():
        target, *rest = key.split("__")
        if rest:
            manifest[target][rest[0]] = value
        else:
            manifest[target] = value
    (poison / "manifest.json").write_text(json.dumps(manifest))


@kind("poison file", "a manifest edited to name another attack or budget (integrity hash)")
def test_manifest_relabelled(made, tmp_path, capsys):
    from uebench.data import load_dataset
    from uebench.poisons.store import load_poisoned

    poison = copy(made / "poison", tmp_path / "p")
    _edit_manifest(poison, attack="em")
    err = cli(capsys, [*TRAIN, "--poison", poison, "--out", tmp_path / "r"])
    assert "was edited after the poison was made" in err and "'em'" in err
    err = cli(capsys, ["evaluate", *DATA, "--model", "tiny", "--epochs", "1", "--poisons", poison,
                       "--out", tmp_path / "e"])
    assert "was edited" in err
    legacy = copy(made / "poison", tmp_path / "old")  # made before the hash: still loads
    manifest = json.loads((legacy / "manifest.json").read_text())
    del manifest["integrity"]
    (legacy / "manifest.json").write_text(json.dumps(manifest))
    clean = load_dataset("synthetic", train_size=64, seed=0).train
    assert load_poisoned(legacy, clean).meta["poison_attack"] == "random"


@pytest.mark.parametrize(("field", "value", "message"), [
    ("budget__eps", "abc", "budget.eps must be a finite number >= 0"),
    ("budget__norm", "l7", "budget.norm must be one of linf, l2, l0 or null, got 'l7'"),
])
@kind("poison file", "a manifest whose budget.eps is not a number or budget.norm not a norm")
def test_manifest_bad_budget(made, tmp_path, capsys, field, value, message):
    poison = copy(made / "poison", tmp_path / "p")
    _edit_manifest(poison, **{field: value})
    assert message in cli(capsys, [*TRAIN, "--poison", poison, "--out", tmp_path / "r"])


# ----------------------------------------------------------------------------- import sources


def _exported(made: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "apb"
    assert main(["poison", "export", str(made / "poison"), "--out", str(dest)]) == 0
    return dest


def _import(src: Path, out: Path, *extra: str) -> list[str]:
    return ["poison", "import", "--format", "apbench", src, *DATA, "--out", out, *extra]


@kind("import source", "a file named .png that is not a PNG")
def test_png_not_png(made, tmp_path, capsys):
    from PIL import Image

    dest = _exported(made, tmp_path)
    victim = next((dest / "data").glob("*.png"))
    Image.new("RGB", (16, 16)).save(victim, format="JPEG")
    printed = cli(capsys, _import(dest, tmp_path / "q"))
    # the message names the format found, not "unreadable" (that message once wrapped this one,
    # and a short temporary path kept the words inside its 80-character excerpt)
    assert "is not a PNG (it is JPEG)" in printed and "not a readable PNG" not in printed
    assert not (tmp_path / "q" / "manifest.json").exists()


@kind("import source", "a truncated PNG")
def test_png_truncated(made, tmp_path, capsys):
    dest = _exported(made, tmp_path)
    victim = next((dest / "data").glob("*.png"))
    victim.write_bytes(victim.read_bytes()[:40])
    assert "not a readable PNG" in cli(capsys, _import(dest, tmp_path / "q"))


@kind("import source", "a PNG decompression bomb")
def test_png_bomb(made, tmp_path, capsys, monkeypatch):
    from PIL import Image

    dest = _exported(made, tmp_path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # a 16x16 image now counts as a bomb
    assert "decompression bomb" in cli(capsys, _import(dest, tmp_path / "q"))


@kind("import source", "a directory named .png")
def test_png_directory(made, tmp_path, capsys):
    dest = _exported(made, tmp_path)
    victim = next((dest / "data").glob("*.png"))
    victim.unlink()
    victim.mkdir()
    assert "not a file" in cli(capsys, _import(dest, tmp_path / "q"))


@kind("import source", "APBench PNGs named by position in an exported subset")
def test_png_positional(made, tmp_path, capsys):
    dest = _exported(made, tmp_path)
    files = sorted((dest / "data").glob("*.png"), key=lambda p: int(p.stem))
    for i, f in enumerate(files):
        f.rename(dest / "data" / f"tmp{i}.png")
    for i in range(len(files)):
        (dest / "data" / f"tmp{i}.png").rename(dest / "data" / f"{i}.png")
    assert "--positional" in cli(capsys, _import(dest, tmp_path / "q"))
    cli(capsys, _import(dest, tmp_path / "q", "--positional"), code=0)
    manifest = json.loads((tmp_path / "q" / "manifest.json").read_text())
    assert manifest["import_naming"] == "position"
    assert manifest["seed"] == 0  # the subset's seed is recorded (never "--seed None")


def _array_import(path: Path, out: Path) -> list[str]:
    return ["poison", "import", "--format", "array", path, *DATA, "--out", out]


@kind("import source", "a truncated .npy")
def test_npy_truncated(tmp_path, capsys):
    np.save(tmp_path / "a.npy", np.zeros((64, 3, 16, 16), dtype=np.float32))
    data = (tmp_path / "a.npy").read_bytes()
    (tmp_path / "a.npy").write_bytes(data[:200])
    assert "not a readable .npy" in cli(capsys, _array_import(tmp_path / "a.npy", tmp_path / "q"))


@kind("import source", "a .npy with a huge header")
def test_npy_huge_header(tmp_path, capsys):
    header = ("{'descr': '<f4', 'fortran_order': False, 'shape': (64, 3, 16, 16), "
              + "'pad': '" + "x" * 200_000 + "'}").encode()
    blob = b"\x93NUMPY\x02\x00" + struct.pack("<I", len(header) + 1) + header + b"\n"
    (tmp_path / "h.npy").write_bytes(blob + bytes(64 * 3 * 16 * 16 * 4))
    assert "not a readable .npy" in cli(capsys, _array_import(tmp_path / "h.npy", tmp_path / "q"))


@kind("import source", "a boolean array")
def test_npy_bool(tmp_path, capsys):
    np.save(tmp_path / "b.npy", np.zeros((64, 3, 16, 16), dtype=bool))
    assert "torch.bool" in cli(capsys, _array_import(tmp_path / "b.npy", tmp_path / "q"))


@kind("import source", "a complex array")
def test_npy_complex(tmp_path, capsys):
    np.save(tmp_path / "c.npy", np.zeros((64, 3, 16, 16), dtype=np.complex64))
    assert "complex" in cli(capsys, _array_import(tmp_path / "c.npy", tmp_path / "q"))


@kind("import source", "a .npy holding pickled objects")
def test_npy_pickle(tmp_path, capsys):
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert "refusing to unpickle" in cli(capsys, _array_import(tmp_path / "o.npy", tmp_path / "q"))


@kind("import source", "a .pt holding pickled objects other than tensors")
def test_pt_pickle(tmp_path, capsys):
    import argparse

    torch.save({"delta": torch.zeros(2), "note": argparse.Namespace(a=1)}, tmp_path / "x.pt")
    assert "refusing to unpickle" in cli(capsys, _array_import(tmp_path / "x.pt", tmp_path / "q"))


@kind("import source", "a .npy declaring more data than memory holds (memory bomb)")
def test_npy_memory_bomb(tmp_path, capsys, monkeypatch):
    import uebench.poisons.interop as interop

    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (100000000000, 3, 16, 16), }"
    header = header.ljust(118) + "\n"
    (tmp_path / "bomb.npy").write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header))
                                        + header.encode() + bytes(4096))
    err = cli(capsys, _array_import(tmp_path / "bomb.npy", tmp_path / "q"))
    assert "declares shape (100000000000, 3, 16, 16)" in err and "holds 4,096 bytes" in err
    np.save(tmp_path / "a.npy", np.zeros((64, 3, 16, 16), dtype=np.float32))
    monkeypatch.setattr(interop, "available_memory", lambda: 100_000)
    err = cli(capsys, _array_import(tmp_path / "a.npy", tmp_path / "q"))
    assert err.count("out of memory") == 1 and "--train-size" in err


@kind("import source", "a perturbation that is mostly clamped to [0, 255] (a wrong scale)")
def test_import_mostly_clamped(tmp_path, capsys):
    np.save(tmp_path / "big.npy", np.full((64, 3, 16, 16), 1e12, dtype=np.float32))
    err = cli(capsys, _array_import(tmp_path / "big.npy", tmp_path / "q"))
    assert "100.0% of the perturbation's nonzero entries" in err and "--force" in err
    assert not (tmp_path / "q").exists()
    cli(capsys, [*_array_import(tmp_path / "big.npy", tmp_path / "q"), "--force"], code=0)


@kind("import source", "an import over its declared budget names the poison once")
def test_import_over_budget(tmp_path, capsys):
    np.save(tmp_path / "d.npy", np.full((64, 3, 16, 16), 16 / 255, dtype=np.float32))
    err = cli(capsys, [*_array_import(tmp_path / "d.npy", tmp_path / "q"), "--norm", "linf",
                       "--eps", "8/255"])
    assert "the imported poison: measured linf" in err and "imported imported" not in err


@kind("import source", "an import without a declared budget says none is enforced")
def test_import_without_budget(made, tmp_path, capsys):
    dest = _exported(made, tmp_path)
    assert main([str(a) for a in _import(dest, tmp_path / "q")]) == 0
    out = capsys.readouterr().out
    assert "measured linf" in out and "none is enforced" in out


@kind("import source", "importing against a class-sorted copy of the data warns")
def test_import_class_sorted_copy_warns(made, tmp_path, monkeypatch):
    import uebench.poisons.api as api

    real = api.clean_train_set

    def sorted_copy(*a, **k):
        clean = real(*a, **k)
        clean.meta["order"] = "class-sorted"
        return clean

    monkeypatch.setattr(api, "clean_train_set", sorted_copy)
    dest = _exported(made, tmp_path)
    with pytest.warns(UserWarning, match="sorted by class"):
        api.import_poison(dest, fmt="apbench", dataset="synthetic", train_size=64,
                          out=tmp_path / "q")


# ----------------------------------------------------------------------------- devices, seeds


@kind("device or seed", "--device cuda on a machine without CUDA")
def test_device_cuda_missing(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert "CUDA is not available" in cli(capsys, [*TRAIN, "--device", "cuda", "--out",
                                                   tmp_path / "r"])
    assert not (tmp_path / "r").exists()


@kind("device or seed", "an unknown device name")
def test_device_unknown(tmp_path, capsys):
    assert "unknown device" in cli(capsys, [*TRAIN, "--device", "gpu7", "--out", tmp_path / "r"])


@kind("device or seed", "a negative seed (train)")
def test_seed_negative_train(tmp_path, capsys):
    assert "seed must be >= 0" in cli(capsys, [*TRAIN, "--seed", "-3", "--out", tmp_path / "r"])


@kind("device or seed", "a negative seed (poison generate)")
def test_seed_negative_poison(tmp_path, capsys):
    assert "seed must be an integer >= 0" in cli(capsys, [*GEN, "--seed", "-1", "--out",
                                                          tmp_path / "p"])


# ----------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.lr=.nan", "train.lr must be a finite number"),
        ("train.lr=.inf", "train.lr must be a finite number"),
        ("train.lr=-0.1", "train.lr must be > 0"),
        ("train.momentum=-1", "train.momentum must be >= 0"),
        ("train.momentum=2", "train.momentum must be <= 1"),
        ("train.weight_decay=-1e-4", "train.weight_decay must be >= 0"),
        ("train.gamma=-0.5", "train.gamma must be > 0"),
        ("model.width=0", "model.width must be > 0"),
        ("train.optimizer=rmsprop", "train.optimizer must be one of sgd, adam"),
        ("sal.eps=0", "sal.eps must be > 0"),
    ],
)
@kind("value", "impossible numbers and choices: NaN/Inf/negative lr, momentum, weight decay, "
               "gamma, width, eps; a choice outside its list")
def test_bad_values(override, message, tmp_path, capsys):
    assert message in cli(capsys, [*TRAIN, "--out", tmp_path / "r", override])
    assert not (tmp_path / "r").exists()


@kind("value", "--epochs 0")
def test_epochs_zero(tmp_path, capsys):
    assert "train.epochs must be >= 1" in cli(capsys, [*TRAIN[:-1], "0", "--out", tmp_path / "r"])


@kind("value", "--train-size larger than the data")
def test_train_size_too_large(tmp_path, capsys):
    args = ["train", "--dataset", "synthetic", "--train-size", "5000", "--model", "tiny",
            "--epochs", "1", "--out", tmp_path / "r"]
    assert "larger than synthetic's split (1000 images)" in cli(capsys, args)


@kind("value", "--poison-ratio outside [0, 1] (or NaN), a --poison-mix other than "
               "replace/add/drop, or drop at ratio 1 (nothing left to train on)")
def test_poison_ratio_outside(made, tmp_path, capsys):
    for flags in (["--poison-ratio", "1.5"], ["--poison-ratio", "-0.2"], ["--poison-ratio", "nan"],
                  ["--poison-mix", "blend"], ["--poison-mix", "drop"]):
        err = cli(capsys, [*TRAIN, "--poison", made / "poison", *flags, "--out", tmp_path / "r"])
        assert len(err.strip().splitlines()) == 1
        assert "poison_ratio must be a number in [0, 1]" in err or \
            "poison_mix must be one of replace, add, drop" in err or \
            "nothing is left to train on" in err
        assert not (tmp_path / "r").exists()


@kind("value", "evaluate --poison-mix drop or check poison_mix=drop (every poison and control "
               "would train on the same clean part)")
def test_evaluate_drop_mix(made, tmp_path, capsys):
    err = cli(capsys, ["evaluate", *DATA, "--model", "tiny", "--epochs", "1", "--poisons",
                       made / "poison", "--poison-ratio", "0.5", "--poison-mix", "drop",
                       "--out", tmp_path / "e"])
    assert len(err.strip().splitlines()) == 1 and "--poison-mix drop" in err
    assert not (tmp_path / "e").exists()
    err = cli(capsys, ["check", "--clean", "synthetic", "--protected", made / "poison",
                       "--out", tmp_path / "c", "poison_mix=drop"])
    assert len(err.strip().splitlines()) == 1 and "poison_mix=drop" in err
    assert not (tmp_path / "c").exists()


@kind("value", "--data-dir that does not exist")
def test_data_dir_missing(tmp_path, capsys):
    err = cli(capsys, [*TRAIN, "--data-dir", tmp_path / "nowhere", "--out", tmp_path / "r"])
    assert "--data-dir" in err and "does not exist" in err


def _idx(path: Path, arr: np.ndarray, magic: int) -> None:
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape)
    path.write_bytes(gzip.compress(header + arr.astype(np.uint8).tobytes()))


@kind("value", "train and test files found in two different copies")
def test_mixed_copies(tmp_path, capsys, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    for folder, prefix, n in ((a, "train", 20), (b, "t10k", 10)):
        _idx(folder / f"{prefix}-images-idx3-ubyte.gz", np.zeros((n, 28, 28)), 2051)
        _idx(folder / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10, 2049)
    monkeypatch.setenv("UEBENCH_DATA", f"{a}{os.pathsep}{b}")
    err = cli(capsys, ["train", "--dataset", "mnist", "--model", "tiny", "--epochs", "1",
                       "--quiet", "--out", tmp_path / "r"])
    assert "two different copies" in err


@kind("value", "uebench ud --beta that is not > 0 (CLI and Python API)")
def test_ud_beta_not_positive(made, tmp_path, capsys):
    from uebench.errors import UebenchError
    from uebench.learnability.distance import ud_table, unlearnable_distance
    from uebench.learnability.report import recompute

    for beta in ("-1", "0", "nan"):
        err = cli(capsys, ["ud", "--clean", made / "run", "--poisoned", made / "run", "--beta",
                           beta])
        assert "--beta must be a finite number > 0" in err
    with pytest.raises(UebenchError, match="beta must be a finite number > 0"):
        recompute(made / "run", [made / "run"], beta=-1.0)
    with pytest.raises(UebenchError, match="beta must be a finite number > 0"):
        ud_table(("clean", [{"epoch": 1, "sal": {"a": 1.0, "b": 2.0}}]), [], beta=0)
    with pytest.raises(UebenchError, match="beta must be"):
        unlearnable_distance([[1.0, 2.0]], [[1.0, 2.0]], beta=-0.5)


@kind("value", "evaluate --poisons naming one poison twice (same directory or same content)")
def test_evaluate_duplicate_poisons(made, tmp_path, capsys):
    base = ["evaluate", *DATA, "--model", "tiny", "--epochs", "1", "--out", tmp_path / "e",
            "--poisons"]
    err = cli(capsys, [*base, made / "poison", made / "poison"])
    assert "the same directory twice" in err
    twin = copy(made / "poison", tmp_path / "twin")
    err = cli(capsys, [*base, made / "poison", twin])
    assert "hold the same poison" in err and str(twin) in err
    assert not (tmp_path / "e").exists()  # refused before anything was written


@kind("value", "uebench datasets on a truncated or partial copy says incomplete, not yes")
def test_datasets_incomplete(tmp_path, capsys):
    for prefix, n in (("train", 20), ("t10k", 10)):
        _idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", np.zeros((n, 28, 28)), 2051)
        _idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10, 2049)
    assert main(["datasets", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if row.startswith("mnist "))
    assert "incomplete" in line and "yes" not in line
    assert "mnist: train 20 of 60000 images; test 10 of 10000 images" in out
    raw = gzip.decompress((tmp_path / "train-images-idx3-ubyte.gz").read_bytes())
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw[: len(raw) // 2]))
    assert main(["datasets", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if row.startswith("mnist "))
    assert "incomplete or corrupt" in line and "truncated" in out


# ----------------------------------------------------------------------------- integrity


@kind("integrity", "a different poison imported into the same directory: old runs are not reused")
def test_poison_content_changed(made, tmp_path, capsys):
    poison = copy(made / "poison", tmp_path / "p")
    run = tmp_path / "r"
    cli(capsys, [*TRAIN, "--poison", poison, "--out", run], code=0)
    shutil.rmtree(poison)
    cli(capsys, [*GEN, "--seed", "0", "--out", poison, "eps=4/255"], code=0)
    assert "content changed" in cli(capsys, [*TRAIN, "--poison", poison, "--out", run])


def _held_by_live_process(capsys, folder: Path, args: list) -> None:
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        folder.mkdir()
        (folder / ".lock").write_text(str(holder.pid))
        assert f"in use by pid {holder.pid}" in cli(capsys, args)
    finally:
        holder.kill()
        holder.wait()


@kind("integrity", "a second process on the same run directory")
def test_run_dir_locked(tmp_path, capsys):
    _held_by_live_process(capsys, tmp_path / "r", [*TRAIN, "--out", tmp_path / "r"])


@kind("integrity", "a second process on the same poison directory")
def test_poison_dir_locked(tmp_path, capsys):
    _held_by_live_process(capsys, tmp_path / "p", [*GEN, "--out", tmp_path / "p"])


@kind("integrity", "a lock left by a process that died is taken over")
def test_stale_lock(tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / ".lock").write_text(str(dead.pid))
    cli(capsys, [*TRAIN, "--out", tmp_path / "r"], code=0)
    assert not (tmp_path / "r" / ".lock").exists()


@kind("integrity", "rerunning a finished run with other settings")
def test_other_settings(made, tmp_path, capsys):
    run = copy(made / "run", tmp_path / "run")
    err = cli(capsys, [*TRAIN, "--out", run, "train.snapshots=true", "train.lr=0.5"])
    assert "different settings (differs in: train.lr)" in err


@kind("integrity", "a partially poisoned run whose stored poisoned indices do not match its "
                   "config or lie outside the dataset")
def test_poisoned_indices_mismatch(made, tmp_path, capsys):
    run = tmp_path / "r"
    partial = [*TRAIN, "--poison", made / "poison", "--poison-ratio", "0.5", "--out", run]
    cli(capsys, partial, code=0)
    path = run / "poisoned_indices.json"
    stored = json.loads(path.read_text())
    others = [i for i in range(64) if i not in stored["indices"]]
    for indices, message in ((sorted([*stored["indices"][1:], others[0]]), "does not list"),
                             ([*stored["indices"][:-1], 64], "lie outside the 64 training")):
        path.write_text(json.dumps({**stored, "indices": indices}))
        assert message in cli(capsys, partial)


@kind("integrity", "EM killed mid-round (surrogate epoch saved, round not): resumes bit-identical")
def test_em_resume_mid_round(tmp_path, capsys, monkeypatch):
    from safetensors.torch import load_file

    import uebench.attacks.em as em

    def args(out):
        return ["poison", "generate", "--attack", "em", *DATA, "--out", out, "surrogate=tiny",
                "steps=1", "train_steps=1", "batch_size=32", "max_rounds=3", "stop_acc=1.0"]

    cli(capsys, args(tmp_path / "whole"), code=0)
    real, calls = em.evaluate, []

    def crash(*a, **k):  # round 2: after its surrogate epoch and noise update, before its save
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(em, "evaluate", crash)
    cli(capsys, args(tmp_path / "cut"), code=130)
    monkeypatch.setattr(em, "evaluate", real)
    cli(capsys, args(tmp_path / "cut"), code=0)
    whole = load_file(str(tmp_path / "whole" / "poison.safetensors"))
    resumed = load_file(str(tmp_path / "cut" / "poison.safetensors"))
    assert torch.equal(whole["delta"], resumed["delta"])
    diagnostics = [json.loads((tmp_path / d / "manifest.json").read_text())["diagnostics"]
                   for d in ("whole", "cut")]
    assert diagnostics[0] == diagnostics[1]


# ----------------------------------------------------------------------------- outputs


@kind("output", "result files are readable by others (not 0600)")
def test_outputs_readable(made):
    for name in ("summary.json", "metrics.jsonl", "config.yaml", "checkpoint.pt"):
        assert (made / "run" / name).stat().st_mode & 0o044 == 0o044, name
    assert (made / "poison" / "manifest.json").stat().st_mode & 0o044 == 0o044


@kind("output", "summary.json stays strict JSON when a value is NaN")
def test_summary_strict_json(tmp_path):
    from uebench.utils.io import read_json, write_json

    write_json(tmp_path / "s.json", {"test_acc": float("nan"), "x": [float("inf"), 1.0]})
    text = (tmp_path / "s.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert read_json(tmp_path / "s.json") == {"test_acc": None, "x": [None, 1.0]}


@kind("output", "an interrupted generation's seconds add up when resumed")
def test_generation_seconds_add_up(tmp_path, capsys, monkeypatch):

    out = tmp_path / "p"
    (out / ".work").mkdir(parents=True)
    (out / ".work" / "seconds.txt").write_text("100.0")
    cli(capsys, [*GEN, "--out", out], code=0)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["generation_seconds"] >= 100.0


# ----------------------------------------------------------------------------- config


@kind("config", "an unknown config key")
def test_unknown_key(tmp_path, capsys):
    assert "unknown config key(s): train.lrr" in cli(capsys, [*TRAIN, "--out", tmp_path / "r",
                                                              "train.lrr=0.1"])


@kind("config", "a --config file that is not valid YAML")
def test_bad_yaml(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("train: [")
    assert "not valid YAML" in cli(capsys, [*TRAIN, "--config", tmp_path / "c.yaml", "--out",
                                            tmp_path / "r"])


@kind("config", "a --config file that does not exist")
def test_missing_yaml(tmp_path, capsys):
    assert "does not exist" in cli(capsys, [*TRAIN, "--config", tmp_path / "none.yaml", "--out",
                                            tmp_path / "r"])


@kind("config", "an override without '='")
def test_override_without_equals(tmp_path, capsys):
    assert "not of the form key=value" in cli(capsys, [*TRAIN, "--out", tmp_path / "r",
                                                       "train.lr"])


@kind("config", "unknown dataset, model or attack names")
def test_unknown_names(tmp_path, capsys):
    assert "Valid datasets" in cli(capsys, ["train", "--dataset", "cifar11", "--out", tmp_path])
    assert "Valid models" in cli(capsys, [*TRAIN, "--model", "resnet19", "--out", tmp_path / "a"])
    assert "Valid attacks" in cli(capsys, ["poison", "generate", "--attack", "xx", *DATA,
                                           "--out", tmp_path / "b"])


@kind("config", "an unknown SAL engine, before any training")
def test_unknown_sal_engine(made, tmp_path, capsys):
    err = cli(capsys, ["evaluate", *DATA, "--model", "tiny", "--epochs", "1", "--poisons",
                       made / "poison", "--out", tmp_path / "e", "sal.engine=slow"])
    assert "unknown sal engine 'slow'" in err
    assert not list((tmp_path / "e").rglob("metrics.jsonl"))


@kind("config", "an unknown SAL engine option")
def test_unknown_sal_option(made, tmp_path, capsys):
    run = copy(made / "run", tmp_path / "run")
    err = cli(capsys, ["sal", run, "--tag", "t", "--option", "probes=3"])
    assert "unknown option(s) ['probes']" in err


@kind("config", "an attack parameter of the wrong type")
def test_attack_param_type(tmp_path, capsys):
    assert "attack random: eps must be a number" in cli(capsys, [*GEN, "--out", tmp_path / "p",
                                                                  "eps=big"])


@kind("config", "uebench sal --origin-from names a field metrics.jsonl does not have")
def test_unknown_origin_field(made, tmp_path, capsys):
    run = copy(made / "run", tmp_path / "run")
    err = cli(capsys, ["sal", run, "--tag", "o", "--origin", "official", "--origin-from", "nope",
                       "--quiet", "--option", "probe_size=16"])
    assert "origin_from='nope'" in err and "loss fields there" in err
    assert not (run / "sal" / "o.yaml").exists()  # the typo did not claim the tag


# ----------------------------------------------------------------------------- grids


@kind("Grid", "a grid file with an unknown axis, before any work")
def test_grid_unknown_axis(tmp_path, capsys):
    grid = tmp_path / "g.yaml"
    grid.write_text("name: g\nbase: {data: {name: synthetic}}\ngrid: {method: [ops], bogus: [1]}\n")
    msg = cli(capsys, ["bench", grid, "--store", tmp_path / "s", "--out", tmp_path / "o"])
    assert "bogus" in msg
    assert not (tmp_path / "s").exists() or not any((tmp_path / "s").rglob("summary.json"))


WORKER = """
import multiprocessing, os, sys, time
from uebench.bench.executors.local import watch_parent

def child(parent):
    watch_parent(parent, interval=0.1)
    time.sleep(120)

if __name__ == "__main__":
    p = multiprocessing.get_context("spawn").Process(target=child, args=(os.getpid(),))
    p.start()
    print(p.pid, flush=True)
    time.sleep(120)
"""


@kind("Grid", "the grid process is killed: its workers exit instead of building on")
def test_grid_worker_dies_with_parent(tmp_path):
    import signal
    import time

    script = tmp_path / "grid_parent.py"
    script.write_text(WORKER)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    for _ in range(300):  # a bounded wait for the watchdog, not a speed assertion
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(worker, signal.SIGKILL)
        pytest.fail("the worker outlived its grid process")


INTERRUPTED = """
import multiprocessing, signal, sys
from uebench.bench.executors.local import LocalExecutor
from uebench.bench.graph import build_plan
from uebench.bench.grid import grid_from_dict
from uebench.bench.progress import GridProgress
from uebench.bench.store import Store
from uebench.errors import Terminated

def interrupt(*_):
    raise Terminated("SIGTERM")

if __name__ == "__main__":
    # an EM generation that never converges (stop_acc 1 is never exceeded): it runs until killed
    grid = grid_from_dict({"name": "g", "controls": False,
                           "base": {"data": {"name": "synthetic", "train_size": 256}},
                           "grid": {"method": [{"name": "em", "attack": "em", "params": {
                               "max_rounds": 100000, "stop_acc": 1.0}}]}})
    plan = build_plan(grid, Store(sys.argv[1]))
    (job,) = [j for j in plan.todo() if j.kind == "poison"]
    signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 10)  # the worker has started (spawned, torch imported)
    try:
        LocalExecutor(workers=1).run([job], GridProgress([job], enabled=False))
    except Terminated:
        print("stopped", len(multiprocessing.active_children()),
              plan.store.is_complete("poison", job.key), flush=True)
"""


@kind("Grid", "the grid is interrupted (Ctrl-C, SIGTERM): its workers stop now, not when their "
              "job ends")
def test_grid_interrupt_stops_workers(tmp_path):
    script = tmp_path / "interrupted.py"
    script.write_text(INTERRUPTED)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "store")],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:  # a bounded wait for the interruption, not a speed assertion: the job never ends
        out, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.communicate()
        pytest.fail("the interrupted grid waited for its worker's job instead of stopping it")
    # no worker left building on, and nothing that looks complete
    assert out.split() == ["stopped", "0", "False"]


# ----------------------------------------------------------------------------- controls and study


@kind("Controls", "an l0 control whose radius is not a pixel count, or a class-wise l2 noise")
def test_random_control_bad_budget(tmp_path, capsys):
    err = cli(capsys, [*GEN, "--out", tmp_path / "a", "norm=l0", "eps=0.5"])
    assert "number of changed pixels" in err and "eps=1" in err
    err = cli(capsys, [*GEN, "--out", tmp_path / "b", "norm=l2", "eps=0.5", "classwise=true"])
    assert "cannot be class-wise" in err
    assert not (tmp_path / "a" / "manifest.json").exists()


@kind("Controls", "a grid's controls key is neither true nor false")
def test_grid_controls_not_bool(tmp_path, capsys):
    grid = tmp_path / "g.yaml"
    grid.write_text("name: g\nbase: {data: {name: synthetic}}\ncontrols: maybe\n"
                    "grid: {method: [ops]}\n")
    err = cli(capsys, ["bench", grid, "--store", tmp_path / "s", "--out", tmp_path / "o"])
    assert "controls must be true" in err


@kind("Controls", "uebench validate on a folder that is not a grid view, --k below 2, an "
                  "unknown statistic in --panels, or a figure of a result without that statistic "
                  "or without paired effects")
def test_validate_not_a_view(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    err = cli(capsys, ["validate", tmp_path / "x"])
    assert "is not a grid view" in err and "uebench bench" in err
    view = tmp_path / "v"
    view.mkdir()
    (view / "index.json").write_text("{}")
    err = cli(capsys, ["validate", view, "--k", "1"])
    assert "--k must be >= 2" in err
    err = cli(capsys, ["validate", view, "--figure", tmp_path / "f.png", "--panels", "acc,udd"])
    assert "--panels: unknown statistic udd" in err and "choose from ud," in err
    assert not (tmp_path / "f.png").exists()
    # the same figure drawn from a stored result (Python API): what it lacks is named
    from uebench.bench.validation_figure import plot_effects
    from uebench.errors import UebenchError

    with pytest.raises(UebenchError, match="no such statistic in this validation result: ud; "
                                           "it has acc"):
        plot_effects({"statistics": ["acc"], "settings": [], "effects": []},
                     tmp_path / "f.png", statistics=["ud"])
    with pytest.raises(UebenchError, match="no paired effects to draw"):
        plot_effects({"statistics": ["acc"], "settings": [], "effects": []}, tmp_path / "f.png")
    assert not (tmp_path / "f.png").exists()


# ----------------------------------------------------------------------------- the page


def test_docs_list_every_kind():
    page = (Path(__file__).resolve().parents[1] / "docs" / "faults.md").read_text()
    missing = [name for _c, _w, name in KINDS if f"`{name}`" not in page]
    assert not missing, f"docs/faults.md does not list {missing}"
    assert len(KINDS) >= 45
