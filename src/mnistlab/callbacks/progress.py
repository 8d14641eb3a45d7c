"""What a run shows on the console: a tqdm progress bar redrawn at most every `refresh_seconds`, however fast the
steps are, on a terminal; one line per epoch where the output is a file or a pipe. No dependency's advertising."""

import logging
import sys
import time
from typing import Optional

from mnistlab.compat.lightning import ProgressBarBase

ADVERTISING = ("💡 Tip:",)  # Lightning's "try installing litlogger / litmodels", once or twice on every run


class NoAdvertising(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(ADVERTISING)


def drop_advertising() -> None:
    """Drop the tips that dependencies log on every run (Lightning's, through its rank-zero logger), and show
    Lightning's information lines ("GPU available: ...") on stdout: stderr is for what went wrong, so that a
    refusal is the one line there."""
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(existing, NoAdvertising) for existing in logger.filters):
        logger.addFilter(NoAdvertising())
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        for handler in logging.getLogger(name).handlers:
            if type(handler) is logging.StreamHandler and handler.stream is sys.stderr:
                handler.setStream(sys.stdout)


class ProgressBar(ProgressBarBase):
    """Lightning's tqdm bar redraws every `refresh_rate` steps, and a redraw (with the logged metrics)
    costs more than a small network's whole step. Redrawing by time instead costs the same small fraction
    of any step, however fast. The last batch of each bar is always drawn.

    `lines`: one line per training epoch instead of the bars (tqdm's redraws, written to a file, are thousands of
    lines); None chooses the lines when standard output is not a terminal."""

    def __init__(self, refresh_seconds: float = 0.1, lines: Optional[bool] = None, **kwargs):
        super().__init__(refresh_rate=1, **kwargs)
        self.refresh_seconds = refresh_seconds
        self.last_redraw = float("-inf")
        self.lines = lines
        self.epoch_started = 0.0  # set as each training epoch starts
        self.epoch_ended: Optional[float] = None

    def should_redraw(self, current: int, total: int) -> bool:  # asked before every redraw, of every bar
        now = time.monotonic()
        if not self.is_enabled or (now - self.last_redraw < self.refresh_seconds and current != total):
            return False
        self.last_redraw = now
        return True

    def writes_lines(self) -> bool:
        return self.lines if self.lines is not None else not sys.stdout.isatty()

    def setup(self, trainer, pl_module, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if self.writes_lines():
            self.disable()  # no bars: write_epoch_line writes the lines

    def on_train_epoch_start(self, trainer, *args) -> None:
        self.write_epoch_line(trainer)
        super().on_train_epoch_start(trainer, *args)
        self.epoch_started = time.monotonic()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        self.epoch_ended = time.monotonic()  # its line is written once the module has logged the epoch's values

    def on_train_end(self, trainer, pl_module) -> None:
        self.write_epoch_line(trainer)
        super().on_train_end(trainer, pl_module)

    def write_epoch_line(self, trainer) -> None:
        if self.epoch_ended is not None and self.writes_lines() and trainer.is_global_zero:
            print(self.epoch_line(trainer, self.epoch_ended - self.epoch_started), flush=True)
        self.epoch_ended = None

    @staticmethod
    def epoch_line(trainer, seconds: float) -> str:
        """`epoch 2/5  step 1720  train/acc 0.9781  train/loss 0.0712  val/acc 0.9834  val/loss 0.0573  (9.83 s)`:
        the epoch's values of the progress bar's metrics (validation's, when it ran at the epoch's end)."""
        epochs = f"/{trainer.max_epochs}" if trainer.max_epochs not in (None, -1) else ""
        steps = f"/{trainer.max_steps}" if trainer.max_steps not in (None, -1) else ""
        parts = [f"epoch {trainer.current_epoch}{epochs}", f"step {trainer.global_step}{steps}"]
        for name, value in sorted(trainer.progress_bar_metrics.items()):
            if not name.endswith("_step"):
                parts.append(f"{name.removesuffix('_epoch')} {float(value):.4f}")
        return "  ".join(parts) + f"  ({seconds:.2f} s)"  # to 0.01 s: benchmarks/epoch_slope.py reads it
