"""Hydra callback (hydra.callbacks in conf/hydra/default.yaml): a record per sweep job, a summary per sweep."""

import logging
import time
from pathlib import Path

from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from mnistlab.config.overrides import RUN_POINTERS
from mnistlab.errors import UserError
from mnistlab.perf.hydra_internals import job_outcome
from mnistlab.runs.distributed import is_rank_zero
from mnistlab.sweeps.records import write_record

log = logging.getLogger(__name__)


def in_multirun(config: DictConfig) -> bool:
    return config.hydra.mode == RunMode.MULTIRUN


class SweepSummary(Callback):
    """Each job writes <job dir>/job.json when it ends; the multirun ends with python -m mnistlab.sweeps.summary."""

    def __init__(self) -> None:
        self.started = time.time()

    def on_job_start(self, config: DictConfig, **kwargs) -> None:
        self.started = time.time()

    def on_job_end(self, config: DictConfig, job_return, **kwargs) -> None:
        if not in_multirun(config) or not is_rank_zero():  # a job of several tasks (DDP) is recorded once
            return
        completed = job_return.status.name == "COMPLETED"
        if not completed:  # the job's train.log gets the traceback; the console gets one line from the sweeper
            log.error("job failed", exc_info=job_outcome(job_return))
        overrides = [item for item in job_return.overrides or [] if item.split("=", 1)[0] not in RUN_POINTERS]
        write_record(
            Path(config.hydra.runtime.output_dir),
            overrides,  # a continued job's resume= is how it was run, not what it is
            job_outcome(job_return),
            completed,
            time.time() - self.started,
        )

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        from mnistlab.sweeps.summary import summarize

        sweeper = config.hydra.sweeper
        try:
            summarize(
                Path(config.hydra.sweep.dir),
                metric=sweeper.get("metric") or "val/acc",
                direction=sweeper.get("direction") or "maximize",
            )
        except UserError as err:  # e.g. no job ran: the sweep itself did not fail
            print(f"[sweep] no summary: {err}", flush=True)
