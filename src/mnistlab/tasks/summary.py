"""Summary of a sweep: one row per job (CSV, and Markdown on the console) and a plot of the metric
against each swept parameter; below the table, what mattered (mnistlab.sweeps.insights).

    python -m mnistlab.tasks.summary <sweep dir> [--metric val/acc] [--direction maximize]
    python -m mnistlab.tasks.summary <sweep dir> --metric val/acc --metric model/parameters \
        --direction maximize --direction minimize      # several objectives: their Pareto front

Every multirun ends with it (SweepSummary, the Hydra callback of conf/hydra/default.yaml, which also writes a
record per job); run it by hand to rebuild the files of any past sweep.
"""

import csv
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any, List, Optional

from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from mnistlab.cli import ArgumentParser, run
from mnistlab.compat.hydra import job_outcome
from mnistlab.errors import UserError
from mnistlab.received.files import refuse_links
from mnistlab.received.records import STATUSES  # unfinished: no record, e.g. the sweep was killed
from mnistlab.received.yaml_file import read_yaml
from mnistlab.runs.distributed import is_rank_zero
from mnistlab.settings.overrides import RUN_POINTERS
from mnistlab.sweeps.insights import insights
from mnistlab.sweeps.jobs import (
    Job,
    columns,
    find_jobs,
    markdown,
    natural,
    numeric,
    short,
    sort_jobs,
    swept_keys,
    table_rows,
)
from mnistlab.sweeps.objectives import Objectives, as_list
from mnistlab.sweeps.records import RECORD, write_record
from mnistlab.sweeps.seed_groups import seed_table

log = logging.getLogger(__name__)
CSV_FILE, MARKDOWN_FILE, PLOT_FILE = "summary.csv", "summary.md", "summary.png"
CONSOLE_ROWS = 30  # the best ones; the files hold every row


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
    parser = ArgumentParser(prog="python -m mnistlab.tasks.summary", description=__doc__.split("\n\n")[0])
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


def in_multirun(config: DictConfig) -> bool:
    return config.hydra.mode == RunMode.MULTIRUN


class SweepSummary(Callback):
    """Each job writes <job dir>/job.json when it ends; the multirun ends with python -m mnistlab.tasks.summary."""

    def __init__(self) -> None:
        self.started = time.time()

    def on_job_start(self, config: DictConfig, **kwargs) -> None:
        self.started = time.time()

    def on_job_end(self, config: DictConfig, job_return, **kwargs) -> None:
        if not in_multirun(config) or not is_rank_zero():  # a job of several tasks (DDP) is recorded once
            return
        completed = job_return.status.name == "COMPLETED"
        if not completed:  # the job's train.log gets the traceback; the console gets one line from the sweeper
            log.error("job failed", exc_info=job_outcome(job_return))
        overrides = [item for item in job_return.overrides or [] if item.split("=", 1)[0] not in RUN_POINTERS]
        write_record(
            Path(config.hydra.runtime.output_dir),
            overrides,  # a continued job's resume= is how it was run, not what it is
            job_outcome(job_return),
            completed,
            time.time() - self.started,
        )

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweeper = config.hydra.sweeper
        try:
            summarize(
                Path(config.hydra.sweep.dir),
                metric=sweeper.get("metric") or "val/acc",
                direction=sweeper.get("direction") or "maximize",
            )
        except UserError as err:  # e.g. no job ran: the sweep itself did not fail
            print(f"[sweep] no summary: {err}", flush=True)


if __name__ == "__main__":
    run(lambda: main(sys.argv[1:]))
