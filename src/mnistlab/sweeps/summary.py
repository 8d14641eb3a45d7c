"""Summary of a sweep: one row per job (CSV, and Markdown on the console) and a plot of the metric
against each swept parameter; below the table, what mattered (mnistlab.sweeps.insights).

    python -m mnistlab.sweeps.summary <sweep dir> [--metric val/acc] [--direction maximize]
    python -m mnistlab.sweeps.summary <sweep dir> --metric val/acc --metric model/parameters \
        --direction maximize --direction minimize      # several objectives: their Pareto front

Every multirun ends with it (mnistlab.sweeps.callback); run it by hand to rebuild the files of any past sweep.
"""

import csv
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional

from mnistlab.cli import ArgumentParser
from mnistlab.errors import UserError
from mnistlab.received.records import STATUSES  # unfinished: no record, e.g. the sweep was killed
from mnistlab.sweeps.continuation import job_folders
from mnistlab.sweeps.insights import insights
from mnistlab.sweeps.objectives import Objectives, as_list, shown_value
from mnistlab.sweeps.records import PRUNING_OVERRIDE, RECORD, finite, read_record
from mnistlab.sweeps.seed_groups import seed_table

CSV_FILE, MARKDOWN_FILE, PLOT_FILE = "summary.csv", "summary.md", "summary.png"
REPORTED = ("val/acc", "test/acc")
CONSOLE_ROWS = 30  # the best ones; the files hold every row


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


MARKERS = {"pruned": ("v", "tab:gray"), "failed": ("x", "tab:red"), "unfinished": ("x", "tab:orange")}


def plot(jobs: List[Job], params: List[str], metric: str, direction: str, title: str, path: Path) -> bool:
    """The metric of each finished job against each swept parameter, the other jobs as marks along the
    bottom; False when no job has the metric."""
    scored = [job for job in jobs if job.value(metric) is not None]
    if not scored:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogLocator, MaxNLocator, NullLocator

    keys = params or ["job"]
    n_cols = min(len(keys), 3)
    n_rows = math.ceil(len(keys) / n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.8 * n_cols, 3.9 * n_rows), squeeze=False)
    best = (max if direction == "maximize" else min)(scored, key=lambda job: job.value(metric))
    for ax, key in zip(axes.flat, keys):
        raw = [job.name if key == "job" else job.overrides.get(key, "(unset)") for job in jobs]
        xs = numeric(raw)
        if xs is not None:
            positive = [x for x in xs if x > 0]
            if min(xs) >= 0 and positive and max(xs) / min(positive) >= 10:  # e.g. a learning rate
                ax.set_xscale("log") if min(xs) > 0 else ax.set_xscale("symlog", linthresh=min(positive))
            if len(set(xs)) <= 8 and all(len(value) <= 7 for value in raw):  # a grid: ticks at its values
                ax.xaxis.set_minor_locator(NullLocator())
                values = sorted(set(xs))
                ax.set_xticks(values, [short(raw[xs.index(v)]) for v in values])
            else:
                ax.xaxis.set_major_locator(MaxNLocator(5) if ax.get_xscale() == "linear" else LogLocator())
        else:
            categories = sorted(set(raw), key=natural)
            xs = [categories.index(value) for value in raw]
            ax.set_xticks(
                range(len(categories)),
                [short(c) for c in categories],
                rotation=30 if max(len(c) for c in categories) > 6 else 0,
            )
            ax.set_xlim(-0.5, len(categories) - 0.5)
        x_of = dict(zip((job.name for job in jobs), xs))
        ax.scatter(
            [x_of[job.name] for job in scored],
            [job.value(metric) for job in scored],
            s=36,
            color="tab:blue",
            zorder=2,
            label="ok",
        )
        ax.scatter(
            [x_of[best.name]],
            [best.value(metric)],
            s=220,
            marker="*",
            color="gold",
            edgecolors="black",
            zorder=3,
            label=f"best: job {best.name}",
        )
        for row, status in enumerate(STATUSES):  # jobs without the metric: marks along the bottom of the axes
            others = [x_of[job.name] for job in jobs if job.status == status and job.value(metric) is None]
            marker, color = MARKERS.get(status, ("o", "tab:purple"))
            if others:
                ax.scatter(
                    others,
                    [0.03 + 0.04 * row] * len(others),
                    marker=marker,
                    color=color,
                    s=50,
                    zorder=3,
                    transform=ax.get_xaxis_transform(),
                    clip_on=False,
                    label=status if status != "ok" else f"no {metric}",
                )
                ax.update_datalim([(x, best.value(metric)) for x in others], updatey=False)
                ax.autoscale_view()
        if len(jobs) <= 20:
            for job in scored:
                ax.annotate(
                    job.name,
                    (x_of[job.name], job.value(metric)),
                    textcoords="offset points",
                    xytext=(5, 4),
                    fontsize=8,
                    color="0.3",
                )
        ax.margins(x=0.08, y=0.15)
        ax.set_xlabel(key)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    axes.flat[0].legend(loc="best", fontsize=7)
    for ax in list(axes.flat)[len(keys) :]:
        ax.set_visible(False)
    counts = ", ".join(
        f"{sum(job.status == s for job in jobs)} {s}" for s in STATUSES if any(job.status == s for job in jobs)
    )
    fig.suptitle(f"{title}\n{metric} of {len(jobs)} jobs ({counts})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def sweep_settings(sweep_dir: Path) -> tuple:
    """The optimised metric and direction the sweep itself used (its multirun.yaml), else val/acc, maximize."""
    from mnistlab.received.yaml_file import read_yaml

    settings = sweep_dir / "multirun.yaml"
    hydra = read_yaml(settings).get("hydra") if settings.exists() else None
    sweeper = hydra.get("sweeper") if isinstance(hydra, dict) else None
    sweeper = sweeper if isinstance(sweeper, dict) else {}
    metric, direction = sweeper.get("metric"), sweeper.get("direction")
    if isinstance(metric, list):  # several objectives: kept if they make sense
        try:
            objectives = Objectives.of(metric, direction)
        except UserError:
            return "val/acc", "maximize"
        if not any("${" in name for name in objectives.metrics):
            return list(objectives.metrics), list(objectives.directions)
    return (
        metric if isinstance(metric, str) and "${" not in metric else "val/acc",
        direction if direction in ("maximize", "minimize") else "maximize",
    )


def summarize(sweep_dir: Path, metric: Any = None, direction: Any = None) -> List[dict]:
    """Writes summary.csv, summary.md and summary.png (and the plots of mnistlab.sweeps.insights) in the sweep
    folder, prints the table; returns its rows. metric and direction may be lists: several objectives."""
    if not sweep_dir.is_dir():
        raise UserError(f"no sweep folder {sweep_dir}")
    default_metric, default_direction = sweep_settings(sweep_dir)
    if metric and not direction and len(as_list(metric)) != len(as_list(default_direction)):
        default_direction = "maximize"  # the sweep's directions were for its own metrics
    objectives = Objectives.of(metric or default_metric, direction or default_direction, prefix="")
    metric, direction = objectives.metrics[0], objectives.directions[0]  # the table's order, summary.png's axis
    from mnistlab.received.files import refuse_links

    refuse_links(sweep_dir)  # summary.csv, .md and .png are written there
    jobs = find_jobs(sweep_dir)
    if not jobs:
        raise UserError(f"{sweep_dir} holds no sweep jobs (no <job>/.hydra/overrides.yaml or <job>/{RECORD})")

    params = swept_keys(jobs)
    fixed = {key: value for key, value in jobs[0].overrides.items() if key not in params}
    ordered = sort_jobs(jobs, metric, direction)
    rows = table_rows(ordered, params, *objectives.metrics)
    with open(sweep_dir / CSV_FILE, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*rows[0], "overrides"])
        writer.writeheader()
        for row, job in zip(rows, ordered):
            writer.writerow({**row, "overrides": " ".join(f"{k}={v}" for k, v in job.overrides.items())})

    counts = ", ".join(
        f"{sum(job.status == s for job in jobs)} {s}" for s in STATUSES if any(job.status == s for job in jobs)
    )
    order = "highest" if direction == "maximize" else "lowest"
    header = (
        f"Sweep {sweep_dir}: {len(jobs)} jobs ({counts}), sorted by {metric}, {order} first\n"
        + (f"Same in every job: {' '.join(f'{k}={v}' for k, v in fixed.items())}\n" if fixed else "")
        + "\n"
    )
    over_seeds = seed_table(jobs, params, columns(metric), direction)  # '' unless jobs differ only by seed
    extra, pictures = insights(jobs, params, objectives, sweep_dir)  # importances, Pareto front, their plots
    (sweep_dir / MARKDOWN_FILE).write_text(header + markdown(rows, params) + "\n" + over_seeds + extra)
    plotted = plot(jobs, params, metric, direction, sweep_dir.name, sweep_dir / PLOT_FILE)
    more = len(rows) - CONSOLE_ROWS
    print(
        "\n"
        + header
        + markdown(rows[:CONSOLE_ROWS], params)
        + (f"\n... {more} more rows in {MARKDOWN_FILE}" if more > 0 else "")
        + "\n"
        + over_seeds
        + extra
    )
    written = [CSV_FILE, MARKDOWN_FILE] + ([PLOT_FILE] if plotted else []) + pictures
    print(
        f"summary written to {sweep_dir}/: {', '.join(written)}"
        + ("" if plotted else f" (no plot: no job has {metric})"),
        flush=True,
    )
    return rows


def main(argv: Optional[list] = None) -> None:
    parser = ArgumentParser(prog="python -m mnistlab.sweeps.summary", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", type=Path, help="a multirun folder, e.g. outputs/multirun/2026-01-01/12-00-00")
    parser.add_argument(
        "--metric",
        action="append",
        help="sort and plot by this metric (default: the sweep's own, else val/acc); given again: one more "
        "objective, and the summary shows their Pareto front",
    )
    parser.add_argument(
        "--direction",
        action="append",
        choices=["maximize", "minimize"],
        help="default: the sweep's own, else maximize; one per --metric, or one for all",
    )
    args = parser.parse_args(argv)
    summarize(args.sweep_dir, args.metric, args.direction)


if __name__ == "__main__":
    from mnistlab.cli import run

    run(lambda: main(sys.argv[1:]))
