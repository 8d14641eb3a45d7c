"""Stop a run whose training loss is no longer finite, with an error that says what happened."""

import lightning as L
import torch

from mnistlab.errors import UserError


class TrainingDiverged(UserError):
    """The training loss became NaN or infinite: usually a learning rate too high."""


class StopOnDivergence(L.Callback):
    """Without it a NaN loss trains on silently and ends with chance accuracy; with it the run (or the
    sweep's trial) fails at once, and the checkpoints saved so far stay."""

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor) and not torch.isfinite(loss).all():
            raise TrainingDiverged(f"training diverged: the loss is {loss.item()} at step {trainer.global_step} "
                                   f"(epoch {trainer.current_epoch}); try a lower optimizer.lr")
