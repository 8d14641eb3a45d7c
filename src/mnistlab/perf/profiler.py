"""Lightning's default profiler, minus its cost: profiling is off, the hooks' context managers are free."""

import contextlib

from lightning.pytorch.profilers import PassThroughProfiler


class NoProfiler(PassThroughProfiler):
    """Lightning wraps every hook call (around a hundred a step) in profiler.profile(); the pass-through
    profiler's generator-based context manager costs a noticeable part of a small network's step
    (docs/performance.md). trainer.profiler=simple or =advanced profiles as usual."""

    def profile(self, action_name: str):
        return contextlib.nullcontext(action_name)
