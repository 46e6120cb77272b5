"""The command line: every command has its handler, listings show every registered component,
and key=value items may stand anywhere."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from uebench import commands
from uebench.cli import _handler_name, build_parser, main, parse


def _commands() -> list[tuple[str, str | None]]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    out = []
    for name, parser in sub.choices.items():
        verbs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        out += [(name, v) for v in verbs[0].choices] if verbs else [(name, None)]
    return out


@pytest.mark.parametrize(("command", "verb"), _commands())
def test_every_command_has_a_handler(command, verb):
    args = argparse.Namespace(command=command, verb=verb)
    assert callable(getattr(commands, _handler_name(args)))


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
