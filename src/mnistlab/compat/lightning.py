"""The private parts of Lightning (and of torchmetrics) that mnistlab uses, each behind a public name here,
with the reason it is needed; nothing outside mnistlab.compat names them (tests/test_internals.py checks).
mnistlab.compat.fast_loop, Lightning's training-epoch loop with a shorter step, keeps its own.

They were checked against the Lightning versions in CHECKED_LIGHTNING_VERSIONS: on another version the fast
loop is not installed (Lightning's own loop runs, with a warning) and tests/test_internals.py fails, until
tests/test_fast_loop.py has passed on it and it is added there.
"""

from typing import Iterable, Optional

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment
from torchmetrics import Metric

# The Lightning releases whose internals mnistlab.compat was checked against (tests/test_fast_loop.py passed).
CHECKED_LIGHTNING_VERSIONS = ("2.6.6",)


def unchecked_lightning_version() -> Optional[str]:
    """The installed Lightning's version when mnistlab.compat was not checked against it, else None."""
    return None if L.__version__ in CHECKED_LIGHTNING_VERSIONS else L.__version__


def logged_training_results(trainer: L.Trainer) -> Iterable:
    """The values logged (self.log) in the current training epoch: each has .value, a tensor or a Metric."""
    return trainer.fit_loop.epoch_loop._results.values()  # the loop's result collection has no public accessor


def set_update_count(metric: Metric, updates: int) -> None:
    """Restore a torchmetrics object's count of updates, after its states were set (a resumed run)."""
    # Metric.update_count has no setter; compute() warns or errs at 0 updates, and caches its last result
    metric._update_count, metric._computed = updates, None


def relaunches_command_line(strategy) -> bool:
    """Whether the strategy starts its other processes by running this process's command line again."""
    from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher  # exported nowhere public

    return isinstance(getattr(strategy, "launcher", None), _SubprocessScriptLauncher)


class CSVWriterBase(ExperimentWriter):
    """Lightning's CSV writer, calling `existing_log_dir()` where Lightning's warns about a log folder with
    files in it and deletes its metrics.csv (a Hydra run folder always has files: .hydra/)."""

    def _check_log_dir_exists(self) -> None:  # what ExperimentWriter.__init__ calls; no public hook for it
        self.existing_log_dir()

    def existing_log_dir(self) -> None:
        raise NotImplementedError

    def _rewrite_with_new_header(self, fieldnames: list) -> None:  # what save() calls when a column appears
        self.rewrite(fieldnames)

    def rewrite(self, fieldnames: list) -> None:
        raise NotImplementedError


class CSVLoggerBase(CSVLogger):
    """Lightning's CSVLogger, with the writer `make_writer(log_dir)` returns instead of its own."""

    def make_writer(self, log_dir: str) -> ExperimentWriter:
        raise NotImplementedError

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        # Lightning's own property, with its cached writer and file system: no public way to give it another writer
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = self.make_writer(self.log_dir)
        return self._experiment


class ProgressBarBase(TQDMProgressBar):
    """Lightning's tqdm bar, asking `should_redraw(current, total)` before each redraw of any of its bars."""

    def _should_update(self, current: int, total: int) -> bool:  # the one test before every redraw; not public
        return self.should_redraw(current, total)

    def should_redraw(self, current: int, total: int) -> bool:
        raise NotImplementedError
