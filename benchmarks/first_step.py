"""A callback for `train.py +callbacks.first_step._target_=first_step.FirstStepClock +callbacks.first_step.path=F`:
writes the wall-clock times (time.time()) of fit start, training start and the end of the first training step
to F as JSON and ends the process there, so benchmarks/throughput.py can tell how long after process start
the first step ran without waiting for the rest of the run."""

import json
import os
import time

import torch
from lightning.pytorch.callbacks import Callback


class FirstStepClock(Callback):
    def __init__(self, path: str):
        self.path, self.times = path, {}

    def on_fit_start(self, trainer, pl_module):
        self.times["fit_start"] = time.time()

    def on_train_start(self, trainer, pl_module):
        self.times["train_start"] = time.time()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize()  # the step has run, not just been queued
        self.times["first_step"] = time.time()
        with open(self.path, "w") as f:
            json.dump(self.times, f)
        os._exit(0)  # the rest of the run (validation, test) is not what is measured
