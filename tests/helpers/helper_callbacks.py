"""Callbacks for the tests' training subprocesses, named `helpers.helper_callbacks.<Name>` (tests/ is put on their
PYTHONPATH)."""

import os
import time

from lightning.pytorch.callbacks import Callback


class SignalAtStep(Callback):
    """Sends `signum` to this process after `step` optimizer steps: as the next training batch starts
    (where="batch") or as the next validation starts (where="validation")."""

    def __init__(self, step: int, signum: int, where: str = "batch"):
        self.step, self.signum, self.where = step, signum, where

    def signal(self, trainer, where: str) -> None:
        if where == self.where and trainer.global_step == self.step and not trainer.sanity_checking:
            os.kill(os.getpid(), self.signum)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.signal(trainer, "batch")

    def on_validation_start(self, trainer, pl_module):
        self.signal(trainer, "validation")


class SleepEachStep(Callback):
    """Slows training down, so that a watcher started beside it sees it running."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        time.sleep(self.seconds)
