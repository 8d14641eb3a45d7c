"""A tqdm progress bar redrawn at most every `refresh_seconds`, however fast the steps are."""

import time

from mnistlab.perf.lightning_internals import ProgressBarBase


class ProgressBar(ProgressBarBase):
    """Lightning's tqdm bar redraws every `refresh_rate` steps, and a redraw (with the logged metrics)
    costs more than a small network's whole step. Redrawing by time instead costs the same small fraction
    of any step, however fast. The last batch of each bar is always drawn."""

    def __init__(self, refresh_seconds: float = 0.1, **kwargs):
        super().__init__(refresh_rate=1, **kwargs)
        self.refresh_seconds = refresh_seconds
        self.last_redraw = float("-inf")

    def should_redraw(self, current: int, total: int) -> bool:  # asked before every redraw, of every bar
        now = time.monotonic()
        if not self.is_enabled or (now - self.last_redraw < self.refresh_seconds and current != total):
            return False
        self.last_redraw = now
        return True
