"""Callbacks for the tests' training subprocesses, named `helpers.helper_callbacks.<Name>` (tests/ is put on their
PYTHONPATH)."""

import os
import time
from pathlib import Path
from typing import Optional

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


class SignalOneProcessAtStep(SignalAtStep):
    """SignalAtStep in the DDP process of global rank `rank` only; `note`: a file it writes the time to first."""

    def __init__(self, step: int, signum: int, rank: int, where: str = "batch", note: Optional[str] = None):
        super().__init__(step, signum, where)
        self.rank, self.note = rank, note

    def signal(self, trainer, where: str) -> None:
        if trainer.global_rank != self.rank:
            return
        if self.note and where == self.where and trainer.global_step == self.step and not trainer.sanity_checking:
            Path(self.note).write_text(repr(time.time()))
        super().signal(trainer, where)


class NaNWeightsInOneProcess(Callback):
    """Sets the weights of the DDP process of global rank `rank` to NaN as the batch after `step` optimizer steps
    starts: that batch's loss is NaN in that process only (the others' follow a step later, through the
    gradients averaged with its)."""

    def __init__(self, step: int, rank: int):
        self.step, self.rank = step, rank

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_rank == self.rank and trainer.global_step == self.step:
            for parameter in pl_module.parameters():
                parameter.data.fill_(float("nan"))
