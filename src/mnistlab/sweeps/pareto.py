"""The trade-offs of a sweep with several objectives (e.g. val/acc against model/parameters): the Pareto front,
the finished jobs that no other job beats in every objective, as a table with the command that reruns each
(summary.md) and a plot (pareto.png)."""

import math
import shlex
from pathlib import Path
from typing import List, Tuple

from mnistlab.sweeps.jobs import short
from mnistlab.sweeps.objectives import Objectives, shown_value
from mnistlab.sweeps.parallel_coordinates import log_axis

PARETO_FILE = "pareto.png"
ALSO_SHOWN = "test/acc"  # not an objective (never tuned on), but what the front's accuracy is worth


def front(jobs: list, objectives: Objectives) -> Tuple[list, list]:
    """(the jobs with every objective, those of them on the Pareto front, best first by the first objective)."""
    scored = [job for job in jobs if all(job.value(m) is not None for m in objectives.metrics)]
    points = [[job.value(m) for m in objectives.metrics] for job in scored]
    on_front = [scored[i] for i in objectives.front(points)]
    sign = -1.0 if objectives.directions[0] == "maximize" else 1.0
    return scored, sorted(on_front, key=lambda job: sign * job.value(objectives.metrics[0]))


def command(job) -> str:
    """The command that reruns a job: its overrides, each quoted for the shell (they come from job.json)."""
    return "python train.py " + " ".join(shlex.quote(f"{key}={value}") for key, value in job.overrides.items())


def better(direction: str) -> str:
    return "higher is better" if direction == "maximize" else "lower is better"


def markdown(jobs: list, params: List[str], objectives: Objectives) -> str:

    scored, on_front = front(jobs, objectives)
    wanted = "; ".join(f"{m}: {better(d)}" for m, d in zip(objectives.metrics, objectives.directions))
    if not on_front:
        return f"Pareto front: none (no finished job has {objectives.names}).\n"
    extra = (
        [ALSO_SHOWN]
        if ALSO_SHOWN not in objectives.metrics and any(j.value(ALSO_SHOWN) is not None for j in on_front)
        else []
    )
    header = ["job", *params, *objectives.metrics, *extra]
    lines = [
        f"Pareto front: {len(on_front)} of {len(scored)} finished jobs, those no other job is better than in one "
        f"objective without being worse in another ({wanted}):",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(" --- " for _ in header) + "|",
    ]
    for job in on_front:
        cells = [job.name, *(short(job.overrides.get(key, "")) for key in params)]
        cells += [shown_value(job.value(m)) if job.value(m) is not None else "" for m in [*objectives.metrics, *extra]]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    lines += ["", "Rerun a job of the front:", ""]
    lines += [f"- job {job.name}: `{command(job)}`" for job in on_front]
    return "\n".join(lines) + "\n"


def plot(jobs: list, objectives: Objectives, title: str, path: Path) -> bool:
    """The first objective (y) against each other one (x): every finished job, the front joined by a step line
    and labelled with its job names; False without a front."""
    scored, on_front = front(jobs, objectives)
    if not on_front:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y_metric = objectives.metrics[0]
    others = list(zip(objectives.metrics, objectives.directions))[1:]
    fig, axes = plt.subplots(1, len(others), figsize=(6.4 * len(others), 4.8), squeeze=False)
    for ax, (x_metric, x_direction) in zip(axes.flat, others):
        xs = [job.value(x_metric) for job in scored]
        ax.scatter(xs, [job.value(y_metric) for job in scored], s=30, color="tab:blue", alpha=0.6, label="finished job")
        # joined in order of x: the edge of what the front's jobs reach (with 3+ objectives, points only)
        points = sorted((job.value(x_metric), job.value(y_metric), job.name) for job in on_front)
        ax.plot(
            [p[0] for p in points],
            [p[1] for p in points],
            color="tab:red",
            marker="o",
            markersize=7,
            drawstyle="steps-post" if x_direction == "minimize" else "steps-pre",
            linestyle="-" if len(objectives.metrics) == 2 else "none",
            label="Pareto front",
            zorder=3,
        )
        names: dict = {}  # jobs with the same values share one label
        for x, y, name in points:
            names.setdefault((x, y), []).append(name)
        scale = [math.log10(x) for x in xs] if log_axis(xs) else xs
        low, high = min(scale), max(scale)
        for (x, y), same in names.items():
            right = high > low and ((math.log10(x) if log_axis(xs) else x) - low) / (high - low) > 0.7
            ax.annotate(
                ", ".join(same),
                (x, y),
                textcoords="offset points",
                xytext=(-6 if right else 6, -12),
                ha="right" if right else "left",
                fontsize=8,
                color="tab:red",
            )
        if log_axis(xs):
            ax.set_xscale("log")
        ax.margins(x=0.08, y=0.12)
        ax.set_xlabel(f"{x_metric} ({better(x_direction)})")
        ax.set_ylabel(f"{y_metric} ({better(objectives.directions[0])})")
        ax.grid(alpha=0.3, which="both" if ax.get_xscale() == "log" else "major")
        ax.legend(loc="best", fontsize=8)
    fig.suptitle(
        f"{title}\nPareto front: {len(on_front)} of {len(scored)} finished jobs (labels: job numbers)", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def section(jobs: list, params: List[str], objectives: Objectives, title: str, sweep_dir: Path) -> tuple:
    """(the summary.md section, whether pareto.png was written)."""
    plotted = plot(jobs, objectives, title, sweep_dir / PARETO_FILE)
    return markdown(jobs, params, objectives), plotted
