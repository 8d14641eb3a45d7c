"""A sweep's finished jobs as lines across one vertical axis per swept parameter and one per objective (parallel
coordinates), coloured by the first objective: which settings the best jobs share. Drawn as
parallel_coordinates.png beside summary.png, which shows the metric against each parameter on its own."""

import math
from pathlib import Path
from typing import List, Tuple

from mnistlab.sweeps.jobs import natural, numeric, short
from mnistlab.sweeps.objectives import Objectives, shown_value

PARALLEL_FILE = "parallel_coordinates.png"
GRID_TICKS = 8  # up to this many distinct values, each gets a tick; more: five ticks along the axis
MIN_GAP = 0.045  # of the axis' height between two tick labels: closer ones are left out


def log_axis(numbers: List[float]) -> bool:
    """Whether values spread over a factor of 10 or more look drawn on a log scale (a learning rate, a layer
    size, a parameter count) rather than a linear one (a dropout rate): more evenly split by their geometric
    middle than by their arithmetic one."""
    low, high = min(numbers), max(numbers)
    if low <= 0 or high / low < 10:
        return False
    geometric, arithmetic = math.sqrt(low * high), (low + high) / 2
    balance = [abs(2 * sum(x < middle for x in numbers) - len(numbers)) for middle in (geometric, arithmetic)]
    return balance[0] <= balance[1]


def numeric_axis(numbers: List[float], labels: List[str]) -> Tuple[List[float], list, bool]:
    """Positions in [0, 1], ticks as (position, label), and whether the axis is logarithmic."""
    log = log_axis(numbers)
    ts = [math.log10(x) for x in numbers] if log else list(numbers)
    low, high = min(ts), max(ts)
    span = high - low

    def at(t: float) -> float:
        return 0.5 if span == 0 else (t - low) / span

    if len(set(numbers)) <= GRID_TICKS:
        ticks = {at(t): label for t, label in zip(ts, labels)}
    else:
        steps = [low + span * i / 4 for i in range(5)]
        ticks = {at(t): f"{(10**t if log else t):.3g}" for t in steps}
    return [at(t) for t in ts], apart(sorted(ticks.items())), log


def apart(ticks: list) -> list:
    """The ticks with at least MIN_GAP between labels; the lowest and the highest are always kept."""
    kept = [ticks[0]]
    for tick in ticks[1:-1]:
        if tick[0] - kept[-1][0] >= MIN_GAP and ticks[-1][0] - tick[0] >= MIN_GAP:
            kept.append(tick)
    return kept + ticks[-1:] if len(ticks) > 1 else kept


def category_axis(values: List[str]) -> Tuple[List[float], list, bool]:

    categories = sorted(set(values), key=natural)
    step = 1 / (len(categories) - 1) if len(categories) > 1 else 0
    where = {c: (0.5 if step == 0 else i * step) for i, c in enumerate(categories)}
    return [where[v] for v in values], apart([(where[c], short(c)) for c in categories]), False


def plot(jobs: list, params: List[str], objectives: Objectives, title: str, path: Path) -> bool:
    """False (and no file) with fewer than two swept parameters (summary.png says it all) or two finished jobs."""

    scored = [job for job in jobs if all(job.value(m) is not None for m in objectives.metrics)]
    if len(params) < 2 or len(scored) < 2:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    axes_data = []  # (name, positions, ticks, log)
    for key in params:
        raw = [job.overrides.get(key, "(unset)") for job in scored]
        numbers = numeric(raw)
        axes_data.append((key, *(numeric_axis(numbers, [short(v) for v in raw]) if numbers else category_axis(raw))))
    for metric in objectives.metrics:
        values = [job.value(metric) for job in scored]
        axes_data.append((metric, *numeric_axis(values, [shown_value(v) for v in values])))

    first, direction = objectives.metrics[0], objectives.directions[0]
    scores = [job.value(first) for job in scored]
    norm = Normalize(min(scores), max(scores) if max(scores) > min(scores) else min(scores) + 1e-9)
    cmap = plt.get_cmap("viridis" if direction == "maximize" else "viridis_r")  # the best jobs yellow
    sign = 1.0 if direction == "maximize" else -1.0
    order = sorted(range(len(scored)), key=lambda i: (sign * scores[i], -i))  # ties: the earliest job is best
    best = order[-1]

    n = len(axes_data)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.9 * n + 1.5), 5.0))
    xs = list(range(n))
    for i in order:  # the best drawn last, on top
        ys = [positions[i] for _, positions, _, _ in axes_data]
        ax.plot(xs, ys, color=cmap(norm(scores[i])), lw=2.8 if i == best else 1.3, alpha=1.0 if i == best else 0.75)
    for x, (_, _, ticks, _) in zip(xs, axes_data):
        ax.axvline(x, color="0.2", lw=0.8, zorder=0)
        for position, label in ticks:
            ax.text(
                x - 0.04,
                position,
                label,
                ha="right",
                va="center",
                fontsize=7,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.7, "pad": 0.5},
            )
    names = [name + (" (log)" if log else "") for name, _, _, log in axes_data]
    ax.set_xticks(xs, names, rotation=15 if max(len(name) for name in names) > 14 else 0, fontsize=8)
    ax.set_xlim(-0.45, n - 0.8)
    ax.set_ylim(-0.05, 1.05)
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, pad=0.02, fraction=0.04)
    bar.set_label(first)
    fig.suptitle(
        f"{title}\n{len(scored)} finished jobs, coloured by {first}; thick: the best, job {scored[best].name}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
