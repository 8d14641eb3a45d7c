"""Ctrl-C (SIGINT), SIGTERM, or SLURM's warning before the time limit (SIGUSR1, SIGUSR2 from submitit) during
training: finish the batch, save a checkpoint, stop; under SLURM a warning also requeues the job."""

import logging
import signal
import sys
from pathlib import Path

from lightning.pytorch.callbacks import Callback

log = logging.getLogger(__name__)

PREEMPTION = (signal.SIGUSR1, signal.SIGUSR2)  # `#SBATCH --signal=B:USR1@120`; submitit sends USR2
SIGNALS = (signal.SIGINT, signal.SIGTERM, *PREEMPTION)


class Interrupted(Exception):
    """Raised after the checkpoint is saved; train() reports it and exits with 128 + signal number."""

    def __init__(self, signum: int, path: Path, step: int):
        super().__init__(f"{signal.Signals(signum).name} at step {step}")
        self.signum, self.path, self.step = signum, path, step


def validation_follows(trainer, batch_idx: int) -> bool:
    """Whether Lightning validates (or ends the epoch) right after this batch. A checkpoint taken
    at such a batch's end resumes past that validation: Lightning skips it on restart."""
    loop = trainer.fit_loop.epoch_loop
    if loop.batch_progress.is_last_batch:
        return True
    every = trainer.val_check_batch
    if not every or every == float("inf"):
        return False
    index = loop.total_batch_idx if trainer.check_val_every_n_epoch is None else batch_idx
    return (index + 1) % every == 0


class SaveOnInterrupt(Callback):
    """Saves `<dirpath>/interrupted.ckpt` at the end of the batch during which the signal came (or of
    the next one, if validation follows this one), and stops as the batch after it starts.

    The checkpoint is taken where Lightning's own step checkpoints are (after the optimizer and
    scheduler steps), so resuming from it continues exactly. A second signal stops at once.
    """

    def __init__(self, dirpath):
        self.path = Path(dirpath) / "interrupted.ckpt"  # not last.ckpt: ModelCheckpoint owns that name
        self.signum = None
        self.saved_step = None
        self.previous = {}

    def request_stop(self, signum, frame) -> None:
        self.signum = signum
        for other in SIGNALS:  # a second Ctrl-C aborts without waiting for the batch
            signal.signal(other, self.previous.get(other, signal.SIG_DFL))
        message = f"{signal.Signals(signum).name}: saving a checkpoint after this batch (once more: abort now)"
        log.warning(message)
        print(message, file=sys.stderr, flush=True)  # the console shows no log lines (train.log does)

    def on_train_start(self, trainer, pl_module) -> None:
        # after Lightning's own SIGTERM handler is in place, which would stop without saving
        try:
            self.previous = {signum: signal.signal(signum, self.request_stop) for signum in SIGNALS}
        except ValueError:  # not the main thread: leave signals alone
            self.previous = {}

    def restore_handlers(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self.previous = {}

    def agreed_signal(self, trainer):
        """The signal to act on after this batch, if any. Under DDP the signal may reach one process only (or
        each at another batch): the processes agree, at every batch's end, on the highest signal any of them had,
        so that all save the same step together (a save waits for every process) and stop. A signal that comes
        after the agreement counts at the next batch."""
        if trainer.world_size == 1 or self.saved_step is not None:
            return self.signum
        import torch

        mine = torch.tensor(self.signum or 0, device=trainer.strategy.root_device)
        agreed = int(trainer.strategy.reduce(mine, reduce_op="max"))
        if not agreed:
            return None
        if self.signum is None:
            self.request_stop(agreed, None)
        return agreed

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        signum = self.agreed_signal(trainer)
        if signum is not None and self.saved_step is None and not validation_follows(trainer, batch_idx):
            self.signum = signum
            trainer.save_checkpoint(self.path, weights_only=False)  # False: the full training state
            self.saved_step = trainer.global_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.saved_step is not None:
            self.restore_handlers()
            raise Interrupted(self.signum, self.path, self.saved_step)

    def on_train_end(self, trainer, pl_module) -> None:
        self.restore_handlers()

    def on_exception(self, trainer, pl_module, exception) -> None:
        self.restore_handlers()
