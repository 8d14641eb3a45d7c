"""Lightning's CSVLogger, except that a resumed run continues its metrics.csv instead of deleting it."""

import csv
import os
from typing import Optional

from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from mnistlab.compat.lightning import CSVLoggerBase, CSVWriterBase
from mnistlab.received.records import read_metric_rows


class ContinuingWriter(CSVWriterBase):
    """Keeps the rows logged before `resume_step` (none for a new run); the resumed run logs the rest."""

    def __init__(self, log_dir: str, resume_step: int):
        self.resume_step = resume_step
        super().__init__(log_dir)

    def existing_log_dir(self) -> None:
        # in place of Lightning's, which warns and deletes metrics.csv whenever the folder holds anything, and a
        # Hydra run folder always does (.hydra/)
        if not os.path.isfile(self.metrics_file_path):
            return
        keys, rows = read_metric_rows(self.metrics_file_path)  # a received run's file: read at the boundary
        kept = [row for row in rows if int(row["step"]) < self.resume_step]
        if kept:
            self.metrics_keys = keys
            write_atomically(self.metrics_file_path, keys, kept)
        else:
            os.remove(self.metrics_file_path)

    def rewrite(self, fieldnames: list) -> None:
        """The file again with a new column (Lightning's rewrites it in place: a kill or a full disk meanwhile
        would lose its rows)."""
        with open(self.metrics_file_path, newline="") as file:  # this run's own rows
            rows = list(csv.DictReader(file))
        write_atomically(self.metrics_file_path, fieldnames, rows)


def write_atomically(path: str, fieldnames: list, rows: list) -> None:
    """The rows written to a temporary file beside `path`, then renamed over it: the old file or the new, whole."""
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        with open(temporary, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=fieldnames)
            writer.writeheader()
            writer.writerows(rows)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


class CSVLogger(CSVLoggerBase):
    """`resume_step` is set by train() for a resumed run: the global step of its checkpoint."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.resume_step: Optional[int] = None

    def make_writer(self, log_dir: str) -> ExperimentWriter:
        return ContinuingWriter(log_dir, self.resume_step or 0)
