"""The loggers beside the CSV one (conf/logger/): TensorBoard, MLflow and W&B, each continuing a resumed run.

train() sets `resume_step` (its checkpoint's global step) on a resumed run's loggers before anything is logged.
TensorBoard hides the events the stopped process wrote from that step on; MLflow and W&B log into the run whose
id the run folder's trackers.json recorded when the run started.
"""

import inspect
import json
import logging
import os
from pathlib import Path
from typing import Optional

from lightning.pytorch.loggers import MLFlowLogger as LightningMLFlowLogger
from lightning.pytorch.loggers import TensorBoardLogger as LightningTensorBoardLogger
from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only

from mnistlab.received.records import read_tracker_runs

log = logging.getLogger(__name__)

TRACKER_RUNS = "trackers.json"  # in the run folder: {"mlflow": <run id>, "wandb": <run id>}


def recorded_run(run_dir, tracker: str) -> Optional[str]:
    """The id of `tracker`'s run that the run in `run_dir` logged into, if it recorded one."""
    path = Path(run_dir, TRACKER_RUNS)
    return read_tracker_runs(path).get(tracker) if path.is_file() else None  # a received file: at the boundary


def record_run(run_dir, tracker: str, run_id: str) -> None:
    path = Path(run_dir, TRACKER_RUNS)
    runs = read_tracker_runs(path) if path.is_file() else {}
    path.write_text(json.dumps({**runs, tracker: run_id}, indent=2) + "\n")


def remove_links(folder: Path) -> None:
    """W&B's links to its newest run and logs (latest-run, debug.log, ...): a run folder holding links is not
    resumed (mnistlab.received.files.refuse_links), and W&B needs none of them."""
    for parent, dirs, files in os.walk(folder, followlinks=False):
        for name in dirs + files:
            if Path(parent, name).is_symlink():
                Path(parent, name).unlink()


class Continuing:
    """A Lightning logger that continues a resumed run: setting `resume_step` builds it again with the arguments
    `continued(step)` adds, as Lightning's loggers take those (SummaryWriter's purge_step, MLflow's run_id, W&B's
    id) only when built. train() sets it before anything is logged, so nothing built is lost."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # its arguments are Lightning's logger's: configs are checked against that signature (tests/test_configs.py)
        cls.__signature__ = inspect.signature(next(base for base in cls.__mro__ if base.__module__ != __name__))

    def __init__(self, *args, **kwargs):
        self.arguments = (args, kwargs)
        self.resumed_at: Optional[int] = None
        super().__init__(*args, **kwargs)

    @property
    def resume_step(self) -> Optional[int]:
        return self.resumed_at

    @resume_step.setter
    def resume_step(self, step: int) -> None:
        args, kwargs = self.arguments
        self.__init__(*args, **{**kwargs, **self.continued(step)})
        self.arguments, self.resumed_at = (args, kwargs), step

    def continued(self, step: int) -> dict:
        raise NotImplementedError


class TensorBoardLogger(Continuing, LightningTensorBoardLogger):
    """Lightning's, writing a resumed run's events into the same folder: TensorBoard's readers leave out the
    events of the stopped run from the resume step on (purge_step), which the resumed run logs again."""

    def continued(self, step: int) -> dict:
        return {"purge_step": step}


class MLFlowLogger(Continuing, LightningMLFlowLogger):
    """Lightning's, with `save_dir` the run folder: the run's `run_dir` tag, and where trackers.json records
    the MLflow run id that a resumed run logs into again. A resumed run skips the metric values the MLflow run
    has already (MLflow keeps every value logged: a killed process's steps after its checkpoint would repeat)."""

    def __init__(self, *args, save_dir: str, tracking_uri: str, tags: Optional[dict] = None, **kwargs):
        self.run_dir, self.tracking_uri = Path(save_dir), tracking_uri
        self.opened = False
        self.logged: dict = {}  # metric -> steps the MLflow run has already
        tags = {**(tags or {}), "run_dir": str(save_dir)}
        super().__init__(*args, save_dir=save_dir, tracking_uri=tracking_uri, tags=tags, **kwargs)

    def continued(self, step: int) -> dict:
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        run_id = recorded_run(self.run_dir, "mlflow")
        if run_id is None:
            return {}
        try:
            MlflowClient(self.tracking_uri).get_run(run_id)
        except MlflowException:
            log.warning(
                "MLflow run %s of %s is not in this store: the resumed run starts a new one", run_id, self.run_dir
            )
            return {}
        return {"run_id": run_id}

    @property
    @rank_zero_experiment
    def experiment(self):
        client = super().experiment
        if not self.opened:
            self.opened = True  # before run_id, which asks for the experiment
            run_id = self.run_id
            if self.resumed_at is not None and run_id == recorded_run(self.run_dir, "mlflow"):
                client.update_run(run_id, status="RUNNING")  # the stopped process marked it FAILED
                for key in client.get_run(run_id).data.metrics:
                    self.logged[key] = {metric.step for metric in client.get_metric_history(run_id, key)}
            else:
                record_run(self.run_dir, "mlflow", run_id)
        return client

    @rank_zero_only
    def log_metrics(self, metrics, step: Optional[int] = None) -> None:
        _ = self.experiment  # on the first call, reads what the MLflow run has already
        new = {key: value for key, value in metrics.items() if (step or 0) not in self.logged.get(key, ())}
        if new:
            super().log_metrics(new, step)

    @rank_zero_only
    def log_hyperparams(self, params) -> None:
        from mlflow.exceptions import MlflowException

        try:
            super().log_hyperparams(params)
        except MlflowException as err:
            if self.resumed_at is None:
                raise
            # MLflow refuses to change a parameter: a resume that overrides one keeps the first values
            log.warning("MLflow keeps the run's first parameter values: %s", str(err).splitlines()[0][:200])


class WandbLogger(Continuing, LightningWandbLogger):
    """Lightning's, except that a W&B run still open in this process is finished first (Lightning would log a
    sweep's next job into the previous job's run: it never finishes the runs it starts), and that a resumed run
    logs into the W&B run whose id the run folder's trackers.json recorded (offline: a new offline-run-* folder
    of the same id, which `wandb sync` uploads into that run)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)  # says how to install wandb when it is missing
        import wandb

        if wandb.run is not None:
            wandb.finish()
        self.recorded = False

    def continued(self, step: int) -> dict:
        run_id = recorded_run(self.save_dir, "wandb")
        return {"id": run_id} if run_id is not None else {}

    @property
    @rank_zero_experiment
    def experiment(self):
        run = super().experiment
        if not self.recorded:
            self.recorded = True
            remove_links(Path(self.save_dir, "wandb"))
            run_id = getattr(run, "id", None)  # a disabled run (WANDB_MODE=disabled) has none worth keeping
            if isinstance(run_id, str) and run_id != recorded_run(self.save_dir, "wandb"):
                record_run(self.save_dir, "wandb", run_id)
        return run
