"""Checkpoints and resume: a run stopped by a signal and resumed ends exactly as one never stopped.

"The same" here is exact: the resumed run's metrics.json equals the uninterrupted run's value for
value (so within any 1e-6), and so does every row of metrics.csv. This holds on CPU with a fixed
seed because the checkpoint carries everything the rest of the run depends on: weights, EMA
weights, optimizer and scheduler state (Lightning), the position in the epoch's batch order
(TensorBatches.state_dict), the torch random state (dropout) and the epoch's running train/*
metrics (ResumeState).
"""

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
import torch
from helpers import ROOT, compose, quick_overrides
from lightning.pytorch.callbacks import Callback

from mnistlab.data.batches import TensorBatches
from mnistlab.tasks.train import train

TESTS = ROOT / "tests"
# dropout and augmentation (random state), EMA, the cosine schedule: all must survive a resume
RUN = [
    "model=mlp",
    "model.net.hidden=[32]",
    "model.net.dropout=0.3",
    "ema.enabled=true",
    "data.augment.shift=2",
    "seed=0",
    "trainer.max_epochs=3",
    "fast_loop=true",  # its mid-epoch restart (Lightning's own step first) is what needs checking (the default)
]
STEPS_PER_EPOCH = 16  # (600 - VAL_SIZE) images in batches of 32


def overrides(mnist_dir, run_dir):
    quick = [o for o in quick_overrides(mnist_dir, run_dir) if not o.startswith("paths.")]
    return quick + RUN + [f"hydra.run.dir={run_dir}"]


def train_script(*args, check=True):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(TESTS)])}
    result = subprocess.run(
        [sys.executable, "train.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


# a resumed run builds only allowed targets, or those of modules this command line trusts (README: Safety)
TRUST_HELPERS = "trusted_modules=[helpers.helper_callbacks]"


def signal_at(step, signum, where="batch"):
    return [
        "+callbacks.killer._target_=helpers.helper_callbacks.SignalAtStep",
        f"+callbacks.killer.step={step}",
        f"+callbacks.killer.signum={int(signum)}",
        f"+callbacks.killer.where={where}",
    ]


def final_metrics(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture(scope="module")
def uninterrupted(mnist_dir, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    train_script(*overrides(mnist_dir, run_dir))
    return run_dir


def assert_same_run(resumed, uninterrupted):
    assert final_metrics(resumed) == final_metrics(uninterrupted)
    assert (resumed / "metrics.csv").read_text() == (uninterrupted / "metrics.csv").read_text()


def resumed_from(run_dir) -> str:
    return [line for line in (run_dir / "train.log").read_text().splitlines() if "resuming" in line][-1]


@pytest.mark.process
def test_sigterm_sigkill_and_ctrl_c_then_resume_match_an_uninterrupted_run(mnist_dir, tmp_path, uninterrupted):
    """One run stopped three ways, resumed after each: SIGTERM mid-epoch (its own checkpoint), SIGKILL
    (only the step checkpoints to go on), Ctrl-C during an epoch's last batch (the checkpoint waits
    for that epoch's validation and comes after the next batch)."""
    step_checkpoints = ["callbacks.recent.every_n_train_steps=4", "callbacks.recent.save_top_k=2"]
    stopped = train_script(
        *overrides(mnist_dir, tmp_path), *step_checkpoints, *signal_at(6, signal.SIGTERM), check=False
    )
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-3000:]
    assert "stopped by SIGTERM: checkpoint of step 7 saved" in stopped.stderr and "resume=" in stopped.stderr
    assert torch.load(tmp_path / "checkpoints" / "interrupted.ckpt", weights_only=True)["global_step"] == 7
    assert not (tmp_path / "metrics.json").exists()  # stopped: not tested

    killed = train_script(
        f"resume={tmp_path}",
        TRUST_HELPERS,
        "+callbacks.killer.step=22",
        f"+callbacks.killer.signum={int(signal.SIGKILL)}",
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL
    assert resumed_from(tmp_path).endswith("interrupted.ckpt")
    step_files = sorted(p.name for p in (tmp_path / "checkpoints").glob("step*.ckpt"))
    assert step_files == ["step000016.ckpt", "step000020.ckpt"]  # every 4 steps, the newest 2 kept

    last_batch_of_epoch_2 = 2 * STEPS_PER_EPOCH - 1
    stopped = train_script(
        f"resume={tmp_path}",
        TRUST_HELPERS,
        f"+callbacks.killer.step={last_batch_of_epoch_2}",
        f"+callbacks.killer.signum={int(signal.SIGINT)}",
        check=False,
    )
    assert stopped.returncode == 128 + signal.SIGINT, stopped.stderr[-3000:]
    assert resumed_from(tmp_path).endswith("step000020.ckpt")
    saved = torch.load(tmp_path / "checkpoints" / "interrupted.ckpt", weights_only=True)
    assert saved["global_step"] == 2 * STEPS_PER_EPOCH + 1  # after the next epoch's first batch

    finished = train_script(f"resume={tmp_path}", "+callbacks.killer=null")
    assert resumed_from(tmp_path).endswith("interrupted.ckpt") and "test/acc" in finished.stdout
    assert_same_run(tmp_path, uninterrupted)


def test_resume_refuses_config_group_changes(tiny_run, tmp_path, in_process):
    run = shutil.copytree(tiny_run, tmp_path / "run", symlinks=True)
    result = in_process("train.py", f"resume={run}", "model=cnn")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: model=cnn: a resumed run keeps its config groups")
    result = in_process("train.py", f"resume={tmp_path}")
    assert result.returncode == 2 and "is not a run directory" in result.stderr


class RecordBatches(Callback):
    orders: dict = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.orders.setdefault(trainer.current_epoch, []).append(batch[1].tolist())


def test_lightning_draws_a_new_batch_order_each_epoch(mnist_dir, tmp_path):
    """Lightning calls set_epoch on `.sampler` (not on `.batch_sampler`): every epoch must differ."""
    train(
        compose(
            quick_overrides(mnist_dir, tmp_path)
            + ["model=softmax", "trainer.max_epochs=2", f"+callbacks.recorder._target_={__name__}.RecordBatches"]
        )
    )
    first, second = RecordBatches.orders[0], RecordBatches.orders[1]
    assert len(first) == len(second) == STEPS_PER_EPOCH and first != second
    assert sorted(sum(first, [])) == sorted(sum(second, []))


def test_tensor_batches_continue_mid_epoch():
    images = torch.zeros(100, 28, 28, dtype=torch.uint8)
    labels = torch.arange(100)
    whole = TensorBatches(images, labels, 10, shuffle=True, seed=3)
    whole.sampler.set_epoch(2)
    expected = [y.tolist() for _, y in whole]

    first = TensorBatches(images, labels, 10, shuffle=True, seed=3)
    first.sampler.set_epoch(2)
    iterator = iter(first)
    seen = [next(iterator)[1].tolist() for _ in range(4)]
    state = first.state_dict()
    assert state == {"epoch": 2, "batches_done": 4}

    resumed = TensorBatches(images, labels, 10, shuffle=True, seed=3)
    resumed.load_state_dict(state)
    resumed.sampler.set_epoch(2)
    assert seen + [y.tolist() for _, y in resumed] == expected
    resumed.sampler.set_epoch(3)  # the next epoch starts from its beginning
    assert len(list(resumed)) == 10
