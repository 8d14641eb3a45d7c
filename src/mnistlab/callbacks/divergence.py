"""Stop a run whose training loss is no longer finite, with an error that says what happened."""

import math

import lightning as L
import torch

from mnistlab.errors import UserError


class TrainingDiverged(UserError):
    """The training loss became NaN or infinite: usually a learning rate too high."""

    raised_by_every_process = True  # the check agrees across DDP processes: rank 0 alone prints it (mnistlab.cli)


class StopOnDivergence(L.Callback):
    """Without it a NaN loss trains on silently and ends with chance accuracy; with it the run (or the
    sweep's trial) fails, and the checkpoints saved so far stay.

    The losses are summed on the device and the sum is read every `every_n_steps` steps and at each
    epoch's end (a NaN or infinity stays in the sum): reading the loss every step would cost a
    device sync per step on a GPU. Under DDP the sums of all processes are added up there (one small
    all-reduce per check): a loss gone NaN in one process stops every process at the same step, with the
    same message, rather than one process leaving the others waiting for it."""

    def __init__(self, every_n_steps: int = 50):
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self.loss_sum, self.first_step = None, 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor):
            return
        if self.loss_sum is None:
            self.loss_sum, self.first_step = loss.detach().clone(), trainer.global_step
        else:
            self.loss_sum.add_(loss.detach())
        if trainer.global_step - self.first_step + 1 >= self.every_n_steps:
            self.check(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.check(trainer)

    def check(self, trainer: L.Trainer) -> None:
        if self.loss_sum is None:
            return
        total = trainer.strategy.reduce(self.loss_sum, reduce_op="sum") if trainer.world_size > 1 else self.loss_sum
        value, first = total.item(), self.first_step
        self.loss_sum = None
        if not math.isfinite(value):
            last = trainer.global_step
            raise TrainingDiverged(
                f"training diverged: the loss became {value} between steps {first} and {last} "
                f"(epoch {trainer.current_epoch}); try a lower optimizer.lr"
            )
