"""The command line: every registered command parses and has its handler, the usage lists every
command, flags resolve to their declared config keys, listings show every registered component,
and key=value items may stand anywhere."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from uebench.cli import build_parser, main, parse
from uebench.commandline import COMMAND_GROUPS, COMMANDS


@pytest.mark.parametrize("name", COMMANDS.names())
def test_every_command_has_help_and_a_handler(name, capsys):
    """Every registered command parses ``--help`` (status 0, its usage names it) and reaches
    its handler through the registry."""
    with pytest.raises(SystemExit) as exit_:
        parse([*name.split(), "--help"])
    assert exit_.value.code == 0
    assert f"usage: uebench {name} " in capsys.readouterr().out
    assert callable(COMMANDS.get(name)) and COMMANDS.meta(name)["help"]


def test_usage_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        parse(["--help"])
    assert exit_.value.code == 0
    usage = capsys.readouterr().out
    tops = {name.split()[0] for name in COMMANDS.names()}
    assert tops == {*(n for n in COMMANDS.names() if " " not in n), *COMMAND_GROUPS.names()}
    missing = [t for t in tops if f"\n    {t} " not in usage and f"\n    {t}\n" not in usage]
    assert not missing, f"uebench --help does not list {missing}:\n{usage}"
    for group in COMMAND_GROUPS.names():
        with pytest.raises(SystemExit):
            parse([group, "--help"])
        text = capsys.readouterr().out
        verbs = [n.split()[1] for n in COMMANDS.names() if n.startswith(group + " ")]
        assert verbs and all(f"\n    {v} " in text or f"\n    {v}\n" in text for v in verbs)


def test_parser_is_built_from_the_registry():
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    leaves = []
    for name, parser in sub.choices.items():
        verbs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        leaves += [f"{name} {v}" for v in verbs[0].choices] if verbs else [name]
    assert sorted(leaves) == COMMANDS.names()


def test_listings_show_every_registered_component(capsys):
    from uebench.attacks import ATTACKS
    from uebench.defenses import DEFENSES

    assert main(["attacks"]) == 0 and main(["defenses"]) == 0
    text = capsys.readouterr().out
    assert all(name in text for name in [*ATTACKS.names(), *DEFENSES.names()])
    assert main(["attacks", "em"]) == 0
    detail = capsys.readouterr().out
    assert "Huang et al." in detail and "max_rounds" in detail and "classwise" in detail


def test_key_value_items_anywhere():
    args = parse(["train", "train.lr=0.5", "--dataset", "synthetic", "--out", "x",
                  "train.epochs=2", "--model", "tiny"])
    assert args.overrides == ["train.lr=0.5", "train.epochs=2"]
    with pytest.raises(SystemExit):  # an unknown option is still an argparse error
        parse(["train", "--out", "x", "--bogus", "1"])


def _is_config_key(cls, path: tuple[str, ...]) -> bool:
    import dataclasses
    import typing

    for part in path:
        hints = typing.get_type_hints(cls)
        if part not in hints:
            return False
        cls = hints[part]
    return not dataclasses.is_dataclass(cls)


def test_flags_resolve_to_their_declared_config_keys():
    """A flag is declared once (RUN_FLAGS / MULTITASK_FLAGS: key, type, help); its option lands on
    that key, above the YAML file and below key=value."""
    from uebench.commands.common import run_cfg_from_args as _run_cfg_from_args
    from uebench.config import RUN_FLAGS, RunCfg
    from uebench.multitask.cli import cfg_from_args
    from uebench.multitask.config import MULTITASK_FLAGS, MultiTaskRunCfg

    assert all(_is_config_key(RunCfg, f.path) for f in RUN_FLAGS.values())
    assert all(_is_config_key(MultiTaskRunCfg, f.path) for f in MULTITASK_FLAGS.values())
    args = parse(["train", "--dataset", "synthetic", "--model", "tiny", "--train-size", "7",
                  "--epochs", "2", "--seed", "3", "--defense", "jpeg", "--out", "x",
                  "train.epochs=4"])
    cfg = _run_cfg_from_args(args)
    assert (cfg.data.name, cfg.model.name, cfg.data.train_size, cfg.seed, cfg.train.epochs) == (
        "synthetic", "tiny", 7, 3, 4)
    assert cfg.defense.startswith("jpeg")
    args = parse(["multitask", "train", "--model", "resnet10", "--tasks", "scene,depth",
                  "--epochs", "3", "--out", "x"])
    mt = cfg_from_args(args)
    assert (mt.model.backbone, mt.tasks, mt.train.epochs) == ("resnet10", ("scene", "depth"), 3)


def test_datasets_lists_the_multitask_datasets(capsys):
    from uebench.multitask import MULTITASK_DATASETS

    assert main(["datasets"]) == 0
    rows = capsys.readouterr().out.splitlines()
    for name in MULTITASK_DATASETS.names():
        row = next(r for r in rows if r.startswith(f"{name} "))
        assert " multi-task " in row
    assert " yes (3x64x64, tasks scene" in next(r for r in rows if r.startswith("scenes "))
    assert " single-task " in next(r for r in rows if r.startswith("synthetic "))


def test_packages_commands_run_through_main(tmp_path, capsys):
    """`uebench train --tasks`, `uebench multitask`, `uebench bench` and `uebench check` are
    reached through the one entry point (parsers beside their packages, one dispatch table)."""
    tiny = ["data.options.n=32", "data.options.image_size=16", "data.test_size=16",
            "train.batch_size=16", "model.decoder_channels=8", "--epochs", "1", "--quiet"]
    sal = ["sal.enabled=true", "sal.options.probe_size=8", "sal.options.eval_size=8",
           "sal.options.steps=1"]
    assert main(["train", "--tasks", "scene,depth", "--out", str(tmp_path / "mt"), *tiny,
                 *sal]) == 0
    assert "scene/accuracy=" in capsys.readouterr().out
    assert (tmp_path / "mt" / "summary.json").exists()
    assert main(["multitask", "plot", str(tmp_path / "mt"), "--out", str(tmp_path / "f")]) == 0
    assert main(["plot", str(tmp_path / "mt"), "--out", str(tmp_path / "g")]) == 0  # Fig. 4 too
    assert (tmp_path / "g" / "task_similarity.png").is_file()
    grid = str(Path(__file__).resolve().parents[1] / "experiments" / "smoke.yaml")
    assert main(["bench", grid, "--dry-run", "--store", str(tmp_path / "s"),
                 "--out", str(tmp_path / "b")]) == 0
    assert "estimate" in capsys.readouterr().out
    assert main(["check", "--clean", "synthetic", "--protected", str(tmp_path / "none")]) == 2
