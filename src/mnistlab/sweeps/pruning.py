"""Lightning callback of an Optuna trial's job: report each validation's metric, stop when the pruner says so.

The Optuna sweeper adds it to each trial's config (+callbacks.optuna_pruning) when a pruner is set;
the job reaches its trial through the study's storage, so it works with any launcher that shares it.
"""

import lightning as L

from mnistlab.sweeps.study_storage import open_storage


class OptunaPruning(L.Callback):
    def __init__(self, storage: str, study_name: str, trial_id: int, pruner, monitor: str = "val/acc"):
        import optuna

        study = optuna.load_study(study_name=study_name, storage=open_storage(storage), pruner=pruner)
        self.trial = optuna.trial.Trial(study, trial_id)  # the sweeper's trial, reached from this process
        self.monitor = monitor
        self.validations = 0  # reported so far: kept in checkpoints, so that a continued trial goes on counting

    def state_dict(self) -> dict:
        return {"validations": self.validations}

    def load_state_dict(self, state_dict: dict) -> None:
        self.validations = state_dict["validations"]  # checked when the checkpoint was read (received.checkpoint)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or value is None:
            return
        step, value = self.validations, float(value)  # step: the validation's index, the same in every trial
        self.validations += 1
        self.trial.report(value, step)
        if self.trial.should_prune():
            import optuna

            raise optuna.TrialPruned(f"pruned after validation {step + 1}: {self.monitor} {value:.4f}")
