"""How many jobs a launcher runs at once on this machine, and how many torch CPU threads each one gets."""

import os
from typing import Mapping, Optional

from hydra.core.hydra_config import HydraConfig

from mnistlab.settings.hydra_mode import in_multirun


def cpu_count() -> int:
    """The cores this process may use (its affinity mask, as a SLURM task sees it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def jobs_at_once(launcher: Optional[Mapping], cores: Optional[int] = None) -> Optional[int]:
    """joblib's n_jobs (-1: one per core, -2: all cores but one, ...); None for other launchers."""
    n_jobs = launcher.get("n_jobs") if launcher else None
    if n_jobs is None:
        return None
    return max(1, (cores or cpu_count()) + 1 + n_jobs) if n_jobs < 0 else max(1, n_jobs)


def threads_per_job(launcher: Optional[Mapping], cores: Optional[int] = None) -> Optional[int]:
    """A SLURM job's cpus_per_task, or cores // jobs at once for joblib; None: torch's default (all cores)."""
    if launcher and launcher.get("cpus_per_task"):
        return int(launcher["cpus_per_task"])
    at_once = jobs_at_once(launcher, cores)
    return None if at_once is None else max(1, (cores or cpu_count()) // at_once)


def default_threads() -> Optional[int]:
    """Threads for a job whose `threads` is null: its share of the cores when jobs run side by side."""
    if not in_multirun():
        return None
    return threads_per_job(HydraConfig.get().launcher)
