"""A grid sweep run again in its old folder (`hydra.sweep.dir=<old>`): what each planned job does.

Jobs are matched to the old folder's by their overrides (values compared as values: 1e-3 is 0.001). A finished
job is skipped; an unfinished or failed one continues from its newest readable checkpoint (a full disk, a dead DDP
process, a crash lose nothing), or without one runs again with its earlier try set aside in `.attempts/`; a job
the old sweep did not have runs in a new numbered folder. The old folder is data: its records are read at the
boundary, and the folders written or moved are the ones found in it, never names read from its files.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, FrozenSet, List, Optional, Tuple

from hydra.errors import OverrideParseException

from mnistlab.errors import ReceivedFileError, one_line
from mnistlab.received.files import refuse_links
from mnistlab.runs.checkpoints import global_step, latest_checkpoint
from mnistlab.settings.overrides import job_key, quoted
from mnistlab.sweeps.records import RECORD, read_record

ATTEMPTS = ".attempts"  # earlier tries of jobs that run again: kept for the record, left out of the summary
DONE = ("ok", "pruned")

SKIP, CONTINUE, RERUN, NEW = "skip", "continue", "rerun", "new"


@dataclass
class PlannedJob:
    overrides: List[str]  # as the sweeper made them
    folder: Optional[str] = None  # the job's folder in the sweep dir; None: Hydra's own (a fresh sweep)
    action: str = NEW
    checkpoint: Optional[Path] = None  # where a continued job starts
    step: Optional[int] = None


def job_folders(sweep_dir: Path) -> List[Path]:
    """The old sweep's job folders: those holding a job record or Hydra's overrides, outside `.attempts`."""
    found = {path.parent.parent for path in sweep_dir.glob("**/.hydra/overrides.yaml")}
    found |= {path.parent for path in sweep_dir.glob(f"**/{RECORD}")}
    return sorted(
        folder
        for folder in found
        if folder != sweep_dir and not any(part.startswith(".") for part in folder.relative_to(sweep_dir).parts)
    )


def next_numbers(sweep_dir: Path, taken: List[str]):
    """Folder names for new jobs: numbers after the highest taken one."""
    numbers = [int(name) for name in taken if name.isdigit()]
    number = max(numbers, default=-1) + 1
    while True:
        if not (sweep_dir / str(number)).exists():
            yield str(number)
        number += 1


def plan(sweep_dir: Path, jobs: List[List[str]]) -> List[PlannedJob]:
    """What each of `jobs` (override lists, in the sweeper's order) does. A sweep folder without jobs: all new,
    in Hydra's own folders, exactly as a fresh sweep."""
    if not sweep_dir.is_dir():
        return [PlannedJob(list(job)) for job in jobs]
    refuse_links(sweep_dir)  # written again (multirun.yaml, jobs), folders moved
    folders = job_folders(sweep_dir)
    if not folders:
        return [PlannedJob(list(job)) for job in jobs]
    old: Dict[FrozenSet, Tuple[Path, dict]] = {}
    for folder in folders:
        name = folder.relative_to(sweep_dir).as_posix()
        if "$" in name or "\\" in name:  # handed to Hydra as hydra.sweep.subdir, which would resolve ${...}
            raise ReceivedFileError(f"{folder}: a job folder whose name Hydra would read as an interpolation; refused")
        record = read_record(folder)
        try:
            key = job_key(record["overrides"])
        except OverrideParseException as err:
            raise ReceivedFileError(f"{folder}: its overrides do not parse ({one_line(err)})") from None
        old.setdefault(key, (folder, record))
    names = next_numbers(sweep_dir, [folder.relative_to(sweep_dir).as_posix() for folder in folders])
    planned = []
    for job in jobs:
        match = old.pop(job_key(job), None)
        if match is None:
            planned.append(PlannedJob(list(job), next(names), NEW))
            continue
        folder, record = match
        name = folder.relative_to(sweep_dir).as_posix()
        if record["status"] in DONE:
            planned.append(PlannedJob(list(job), name, SKIP))
            continue
        checkpoint = latest_checkpoint(folder)
        if checkpoint is not None:
            planned.append(PlannedJob(list(job), name, CONTINUE, checkpoint, global_step(checkpoint)))
        else:
            planned.append(PlannedJob(list(job), name, RERUN))
    return planned


def set_aside(sweep_dir: Path, name: str) -> Path:
    """Move an earlier try of a job out of the way (`.attempts/<name>-<n>`), so that it runs afresh."""
    attempts = sweep_dir / ATTEMPTS
    attempts.mkdir(exist_ok=True)
    flat = name.replace("/", "_")
    for n in range(1, 10_000):
        target = attempts / f"{flat}-{n}"
        if not target.exists():
            os.rename(sweep_dir / name, target)
            return target
    raise OSError(f"{attempts}: too many earlier tries of job {name}")


def launch_overrides(job: PlannedJob, sweep_dir: Path) -> List[str]:
    """The overrides that run `job` in its folder: a continued job resumes there, without Hydra rewriting the
    config it was started with."""
    if job.folder is None:
        return job.overrides
    overrides = job.overrides + [f"hydra.sweep.subdir={quoted(job.folder)}"]
    if job.action == CONTINUE:
        overrides += [f"resume={quoted(str((sweep_dir / job.folder).absolute()))}", "hydra.output_subdir=null"]
    return overrides


def describe(planned: List[PlannedJob]) -> List[str]:
    """The console's account of a continued sweep, one line per kind of job."""

    def names(action: str) -> List[str]:
        return [
            job.folder + (f" (from step {job.step})" if job.action == CONTINUE else "")
            for job in planned
            if job.action == action and job.folder is not None
        ]

    lines = []
    for action, what in (
        (SKIP, "skipped, finished already"),
        (CONTINUE, "continued from their newest checkpoint"),
        (RERUN, "run again, with no checkpoint to continue from (the earlier try is in .attempts/)"),
        (NEW, "new"),
    ):
        folders = names(action)
        if folders:
            lines.append(f"[sweep] {len(folders)} {what}: {', '.join(folders)}")
    return lines
