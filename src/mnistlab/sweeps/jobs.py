"""A sweep folder's jobs as records (their overrides, metrics, status and time), and the tables made of them:
what the sweep summary, compare.py and the insights (importances, Pareto front, parallel coordinates) read."""

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from mnistlab.received.records import STATUSES
from mnistlab.sweeps.continuation import job_folders
from mnistlab.sweeps.objectives import shown_value
from mnistlab.sweeps.records import PRUNING_OVERRIDE, finite, read_record

REPORTED = ("val/acc", "test/acc")


def natural(text: str) -> tuple:
    """'10' after '9': job folders are numbers."""
    parts = re.split(r"([0-9]{1,30})", text)  # ASCII digits only: int() of '²' or of 5000 digits fails
    return tuple((0, int(part), "") if part.isdigit() and part.isascii() else (1, 0, part) for part in parts if part)


def parse_overrides(overrides: list) -> dict:
    pairs = (str(item).partition("=") for item in overrides)
    return {key: value for key, _, value in pairs if key != PRUNING_OVERRIDE}


@dataclass
class Job:
    name: str
    status: str
    overrides: dict
    metrics: dict
    seconds: Optional[float]
    error: Optional[str]

    def value(self, metric: str) -> Optional[float]:
        return finite(self.metrics.get(metric)) if self.status == "ok" else None


def find_jobs(sweep_dir: Path) -> List[Job]:
    """Every job of the sweep (earlier tries of jobs run again, in .attempts/, left out)."""
    jobs = []
    for job_dir in sorted(job_folders(sweep_dir), key=lambda d: natural(str(d.relative_to(sweep_dir)))):
        record = read_record(job_dir)
        jobs.append(
            Job(
                name=str(job_dir.relative_to(sweep_dir)),
                status=record["status"],
                overrides=parse_overrides(record.get("overrides") or []),
                metrics=record.get("metrics") or {},
                seconds=record.get("seconds"),
                error=record.get("error"),
            )
        )
    return jobs


def swept_keys(jobs: List[Job]) -> List[str]:
    """Overrides whose value is not the same in every job."""
    keys = list(dict.fromkeys(key for job in jobs for key in job.overrides))
    return [key for key in keys if len({job.overrides.get(key) for job in jobs}) > 1]


def sort_jobs(jobs: List[Job], metric: str, direction: str) -> List[Job]:
    sign = -1.0 if direction == "maximize" else 1.0

    def key(job: Job) -> tuple:
        value = job.value(metric)
        return (
            value is None,
            sign * value if value is not None else 0.0,
            STATUSES.index(job.status),
            natural(job.name),
        )

    return sorted(jobs, key=key)


def short(value: str) -> str:
    """Optuna's floats with four significant digits; everything else as typed."""
    try:
        number = float(value)
    except ValueError:
        return value
    return f"{number:.4g}" if "." in value or "e" in value.lower() else value


def columns(metric: str, *more: str) -> List[str]:
    """The metrics shown: the optimised one(s), then val/acc and test/acc."""
    return list(dict.fromkeys([metric, *more, *REPORTED]))


def table_rows(jobs: List[Job], params: List[str], metric: str, *more: str) -> List[dict]:
    rows = []
    for job in jobs:
        row = {"job": job.name, "status": job.status}
        row.update({key: job.overrides.get(key, "") for key in params})
        for name in columns(metric, *more):
            value = finite(job.metrics.get(name))
            row[name] = "" if value is None else shown_value(value)
        row["time (s)"] = "" if job.seconds is None else f"{job.seconds:.1f}"
        row["error"] = job.error or ""
        rows.append(row)
    return rows


def markdown(rows: List[dict], params: List[str]) -> str:
    if not rows:
        return ""
    header = list(rows[0])

    def cell(name: str, value: str) -> str:
        value = short(value) if name in params else value
        value = value if len(value) <= 90 else value[:87] + "..."
        return value.replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(name, row[name]) for name in header) + " |" for row in rows]
    return "\n".join(lines)


def numeric(values: list) -> Optional[List[float]]:
    try:
        numbers = [float(value) for value in values]
    except (ValueError, TypeError, OverflowError):
        return None
    return numbers if all(math.isfinite(number) for number in numbers) else None
