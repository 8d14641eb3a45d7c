"""Runs that differ only by `seed` or by cross-validation fold (`data.fold`), as one row with mean ± std and n:
the tables of compare.py and of every sweep's summary. Works on mnistlab.tasks.summary.Job records (name,
status, overrides, metrics, seconds)."""

import math
import statistics
from dataclasses import dataclass
from typing import List, Optional, Tuple

from mnistlab.sweeps.jobs import markdown

SEED, FOLD = "seed", "data.fold"
REPLICATES = (SEED, FOLD)  # repetitions of one configuration: a row of their mean ± std
STEPS = "step"


@dataclass
class Group:
    settings: dict  # the overrides that set this group apart (seed and fold never do)
    jobs: list

    def values(self, name: str) -> List[float]:
        """The metric of each finished job that has it; `step` is a metric too."""
        return [value for value in (job.value(name) for job in self.jobs) if value is not None]

    def seconds(self) -> List[float]:
        return [job.seconds for job in self.jobs if job.status == "ok" and job.seconds is not None]

    def finished(self) -> int:
        return sum(job.status == "ok" for job in self.jobs)


def group_jobs(jobs: list, keys: List[str]) -> List[Group]:
    """Jobs with the same value of every key but the seed and fold (unset counts as a value), in order of
    appearance."""
    groups: dict = {}
    for job in jobs:
        settings = {key: job.overrides.get(key, "") for key in keys if key not in REPLICATES}
        groups.setdefault(tuple(settings.items()), Group(settings, [])).jobs.append(job)
    return list(groups.values())


def mean_std(values: List[float]) -> Tuple[Optional[float], Optional[float]]:
    """Mean and sample standard deviation (None for fewer than two values)."""
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def describe(values: List[float], digits: int) -> str:
    """'0.9712 ± 0.0011', or the one value, or ''."""
    mean, std = mean_std(values)
    if mean is None:
        return ""
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


def job_names(group: Group) -> str:
    return ", ".join(job.name if job.status == "ok" else f"{job.name} ({job.status})" for job in group.jobs)


def markdown_rows(groups: List[Group], keys: List[str], metrics: List[str]) -> List[dict]:
    rows = []
    for group in groups:
        row = {key: group.settings[key] for key in keys if key not in REPLICATES}
        row["n"] = str(group.finished())
        row.update({metric: describe(group.values(metric), 4) for metric in metrics})
        row["steps"] = describe(group.values(STEPS), 0)
        row["time (s)"] = describe(group.seconds(), 1)
        row["runs"] = job_names(group)
        rows.append(row)
    return rows


def csv_rows(groups: List[Group], keys: List[str], metrics: List[str]) -> List[dict]:
    """As markdown_rows, with each mean and standard deviation in its own column (empty: none)."""

    def number(value: Optional[float]) -> str:
        return "" if value is None or not math.isfinite(value) else repr(value)

    rows = []
    for group in groups:
        row = {key: group.settings[key] for key in keys if key not in REPLICATES}
        row["n"] = group.finished()
        for name, values in [
            *((metric, group.values(metric)) for metric in metrics),
            ("steps", group.values(STEPS)),
            ("time (s)", group.seconds()),
        ]:
            mean, std = mean_std(values)
            row[f"{name} mean"], row[f"{name} std"] = number(mean), number(std)
        row["runs"] = job_names(group)
        rows.append(row)
    return rows


def sort_groups(groups: List[Group], metric: str, direction: str = "maximize") -> List[Group]:
    """Best mean first; groups without the metric last."""
    sign = -1.0 if direction == "maximize" else 1.0

    def key(group: Group) -> tuple:
        mean, _ = mean_std(group.values(metric))
        return (mean is None, sign * mean if mean is not None else 0.0)

    return sorted(groups, key=key)


def seed_table(jobs: list, keys: List[str], metrics: List[str], direction: str) -> str:
    """A sweep summary's closing table: mean ± std over seeds and folds, when jobs differ only by those; else ''."""

    groups = group_jobs(jobs, keys)
    if not set(REPLICATES) & set(keys) or len(groups) == len(jobs):
        return ""
    params = [key for key in keys if key not in REPLICATES]
    rows = markdown_rows(sort_groups(groups, metrics[0], direction), params, metrics)
    return (
        "\nOver seeds and folds (jobs that differ only by seed or data.fold: mean ± sample std of the n finished "
        "ones)\n\n" + markdown(rows, params) + "\n"
    )
