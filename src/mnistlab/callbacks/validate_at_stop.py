"""Every fit ends with its final weights validated and checkpointed, also when it stops between validations."""

from lightning.pytorch.callbacks import Callback


class ValidateAtStop(Callback):
    """At the last training step, asks Lightning to stop through `trainer.should_stop`, which it validates first.

    Lightning leaves its loop at max_steps (or at the end of an epoch that check_val_every_n_epoch or an
    integer val_check_interval skips) without validating: a run shorter than an epoch ended with no
    val/acc and no checkpoint. A requested stop is validated, as max_time's and early stopping's are,
    so the checkpoint callbacks see the final result and save it.
    """

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        last_epoch = trainer.max_epochs is not None and 0 <= trainer.max_epochs <= trainer.current_epoch + 1
        if 0 < trainer.max_steps <= trainer.global_step or (
            last_epoch and batch_idx + 1 >= trainer.num_training_batches
        ):
            trainer.should_stop = True
            if trainer.check_val_every_n_epoch is not None:  # the final epoch is a validation epoch
                trainer.check_val_every_n_epoch = 1
