"""Progress bars: a tqdm bar on a terminal, whole plain lines on any other stream (a log file, a
pipe, CI), so ``make demo > log 2>&1`` reads line by line."""

from __future__ import annotations

import io

import pytest

from uebench.cli import main
from uebench.utils import progress as progress_module
from uebench.utils.progress import LineProgress, bar, progress


@pytest.fixture(autouse=True)
def _bars_on(monkeypatch):
    monkeypatch.delenv("UEBENCH_NO_PROGRESS", raising=False)


def test_a_bar_on_a_non_tty_stream_is_one_plain_line():
    stream = io.StringIO()
    with bar(5, desc="train 1/2", unit="batch", file=stream) as pbar:
        assert isinstance(pbar, LineProgress)
        for _ in range(5):
            pbar.update(1)
        pbar.set_postfix(loss="0.1234")
    text = stream.getvalue()
    assert "\r" not in text and "%|" not in text
    assert text.count("\n") == 1 and text.startswith("train 1/2: 5/5 batch in ")
    assert text.rstrip().endswith("loss=0.1234")


def test_a_long_bar_adds_lines_while_it_runs(monkeypatch):
    monkeypatch.setattr(progress_module, "LINE_INTERVAL", 0.0)
    stream = io.StringIO()
    list(progress(range(3), desc="rounds", unit="round", file=stream))
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert lines[0].startswith("rounds: 1/3 round") and "left" in lines[0]
    assert lines[-1].startswith("rounds: 3/3 round") and "left" not in lines[-1]


def test_disabled_bars_write_nothing():
    stream = io.StringIO()
    pbar = bar(3, enabled=False, file=stream)
    pbar.update(3)
    pbar.close()
    assert stream.getvalue() == ""


def test_training_log_on_a_non_tty_stream_has_no_carriage_returns(tmp_path, capsys):
    """A whole command with its progress shown, stderr captured (not a terminal)."""
    assert main(["train", "--dataset", "synthetic", "--model", "tiny", "--train-size", "64",
                 "--test-size", "32", "--epochs", "2", "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and "%|" not in err
    assert [line for line in err.splitlines() if line.startswith("run 2/2: ")]
