"""A callback for sweep tests (`helpers.sweep_hooks.KillJobAtStep`): SIGKILL the whole sweep while one job
trains, only where the environment asks for it, so that the same command can run again unharmed."""

import os
import signal
from pathlib import Path

from lightning.pytorch.callbacks import Callback

ARMED = "MNISTLAB_TEST_KILL_SWEEP"  # set to "1" for the process that is to be killed


class KillJobAtStep(Callback):
    def __init__(self, job: str, step: int):
        self.job, self.step = str(job), step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        from hydra.core.hydra_config import HydraConfig

        folder = Path(HydraConfig.get().runtime.output_dir).name
        if os.environ.get(ARMED) == "1" and folder == self.job and trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)  # the sweep runs its jobs in this process: all of it dies
