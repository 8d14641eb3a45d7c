"""Every run ends validated and checkpointed, also when it stops between validations."""

import json
import math

import pytest
import torch
from helpers import run_script
from helpers.tool_config import train_run

from mnistlab.runs.checkpoints import best_checkpoint
from mnistlab.runs.evaluator import Evaluator

SMALL = ["model=mlp", "model.net.hidden=[16]"]
STEPS_PER_EPOCH = 16  # (600 - VAL_SIZE) images in batches of 32


def steps_of_checkpoints(run_dir) -> set:
    return {
        int(torch.load(path, weights_only=True)["global_step"]) for path in (run_dir / "checkpoints").glob("*.ckpt")
    }


@pytest.mark.parametrize(
    "stop",
    [
        ["trainer.max_epochs=-1", "trainer.max_steps=5"],  # in mid-epoch
        ["trainer.max_epochs=3", "trainer.check_val_every_n_epoch=2"],  # the final epoch is not a validation epoch
        ["trainer.max_epochs=1", "trainer.check_val_every_n_epoch=null", "trainer.val_check_interval=5"],
    ],
)
def test_the_final_step_is_validated_checkpointed_and_tested(stop, mnist_dir, tmp_path):
    metrics = train_run(mnist_dir, tmp_path, SMALL + stop)
    final_step = metrics["step"]
    assert final_step in (5, 3 * STEPS_PER_EPOCH, STEPS_PER_EPOCH)
    assert math.isfinite(metrics["val/acc"])
    assert final_step in steps_of_checkpoints(tmp_path)
    tested = best_checkpoint(tmp_path)
    assert tested is not None
    evaluated = Evaluator(tmp_path, None)(tested, "test")
    assert abs(evaluated["test/acc"] - metrics["test/acc"]) <= 1e-6  # eval.py reproduces the tested checkpoint
    val = Evaluator(tmp_path, None)(tested, "val")
    assert abs(val["val/acc"] - metrics["val/acc"]) <= 1e-6  # metrics.json holds the tested checkpoint's val/acc


@pytest.mark.process
def test_a_run_shorter_than_an_epoch_resumes(mnist_dir, tmp_path):
    train_run(mnist_dir, tmp_path, SMALL + ["trainer.max_epochs=-1", "trainer.max_steps=5"])
    result = run_script("train.py", f"resume={tmp_path}", "trainer.max_steps=9")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"continuing the run in {tmp_path}" in result.stdout
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["step"] == 9 and math.isfinite(metrics["val/acc"])
    assert 9 in steps_of_checkpoints(tmp_path)
