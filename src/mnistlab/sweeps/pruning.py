"""Lightning callback of an Optuna trial's job: report each validation's metric, stop when the pruner says so.

The Optuna sweeper adds it to each trial's config (+callbacks.optuna_pruning) when a pruner is set;
the job reaches its trial through the study's storage, so it works with any launcher that shares it.
A trial that continues one a killed sweep left running (user attribute `retry_of`) resumes its job from a
checkpoint: the callback's count of validations comes back with it, and the new trial first gets what the
interrupted one reported before that point, so the pruner sees what it would have in a study never stopped.
"""

import lightning as L

from mnistlab.sweeps.study_storage import open_storage

MAX_COPIED_REPORTS = 10_000  # one storage write each: a crafted study's millions of reports would take hours


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
        self.take_earlier_reports()

    def take_earlier_reports(self) -> None:
        """The interrupted trial's reports of the validations before the checkpoint, into this trial (once: a job
        requeued within its trial has them already). The study's storage may come with a sweep folder from
        elsewhere: only whole steps in [0, count) with float values are taken."""
        study = self.trial.study
        retry_of = self.trial.user_attrs.get("retry_of")
        if type(retry_of) is not int or len(study.directions) != 1:
            return
        trials = {t.number: t for t in study.get_trials(deepcopy=False)}
        earlier, this = trials.get(retry_of), trials.get(self.trial.number)
        if earlier is None or this is None or this.intermediate_values:
            return
        reports = earlier.intermediate_values
        steps = sorted(s for s in reports if type(s) is int and 0 <= s < self.validations)
        for step in steps[:MAX_COPIED_REPORTS]:
            if isinstance(reports[step], float):
                self.trial.report(reports[step], step)

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
