"""What a run writes to the console: the progress bar on a terminal, one line per epoch into a file or a pipe,
and no dependency's advertising."""

import logging

import lightning as L
import pytest
from helpers import compose, quick_overrides

from mnistlab.callbacks.progress import ProgressBar
from mnistlab.tasks.train import build

WITH_BAR = ["trainer.max_epochs=2", "model=softmax"]


def with_progress_bar(mnist_dir, tmp_path) -> list:
    return [o for o in quick_overrides(mnist_dir, tmp_path) if "enable_progress_bar" not in o] + WITH_BAR


def test_output_that_is_not_a_terminal_gets_one_line_per_epoch(mnist_dir, tmp_path, capsys):
    datamodule, model, trainer = build(compose(with_progress_bar(mnist_dir, tmp_path)))
    trainer.fit(model, datamodule=datamodule)  # pytest's captured stdout is not a terminal
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("  ")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"], lines
    for line in lines:
        assert "train/loss " in line and "val/acc " in line and line.endswith(" s)") and "_step" not in line


@pytest.mark.parametrize("terminal, lines", [(True, None), (False, False)])
def test_a_terminal_or_lines_false_gets_the_bar(terminal, lines, monkeypatch):
    monkeypatch.setattr("sys.stdout.isatty", lambda: terminal)
    bar = ProgressBar(**({} if lines is None else {"lines": lines}))
    assert not bar.writes_lines()


def test_lightnings_tips_are_not_shown(mnist_dir, tmp_path, caplog, monkeypatch):
    build(compose(quick_overrides(mnist_dir, tmp_path)))
    # Lightning's logger as a fresh process has it, whatever the tests before did in this one: propagating (it stops
    # when imported before the root logger has a handler) and at INFO (eval's quiet_lightning raises it)
    monkeypatch.setattr(logging.getLogger("lightning.pytorch"), "propagate", True)
    with caplog.at_level(logging.INFO, logger="lightning.pytorch"):
        L.Trainer(logger=False, enable_progress_bar=False, default_root_dir=tmp_path)  # each would give one
    messages = [record.getMessage() for record in caplog.records]
    assert messages and not [message for message in messages if "Tip" in message or "litlogger" in message]
