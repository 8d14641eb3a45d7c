"""SLURM's warning before a job's time limit: the run saves its checkpoint (mnistlab.callbacks.interrupt), the job
is requeued here, and the requeued job finds its run again: `resume=auto` for a job script, the job's own folder
for a sweep job (mnistlab.runs.resume)."""

import os
import subprocess
from typing import Optional

from mnistlab.runs.distributed import is_rank_zero


def slurm_job_id() -> Optional[str]:
    """This job's id as scontrol takes it (`<array job>_<task>` for a job array's task), or None outside SLURM."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID") or None


def is_requeued() -> bool:
    """A SLURM job started again after a requeue (SLURM counts its restarts)."""
    return os.environ.get("SLURM_RESTART_COUNT", "0") not in ("", "0")


def requeue(run_dir: str) -> str:
    """Requeue this SLURM job (by rank 0 only); what happens next, in words."""
    job = slurm_job_id()
    if job is None:
        return f"not a SLURM job: nothing requeued; continue with: python train.py resume={run_dir}"
    if not is_rank_zero():
        return f"SLURM job {job} is requeued by rank 0"
    try:
        subprocess.run(["scontrol", "requeue", job], check=True, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as err:
        return f"requeueing SLURM job {job} failed ({err}); continue with: python train.py resume={run_dir}"
    return f"SLURM job {job} requeued: it continues this run by itself (resume=auto, or as a sweep job)"
