"""Which swept parameters mattered: Optuna's parameter importances over a sweep's finished jobs, as a table
(summary.md) and a bar chart (importance.png).

The jobs' records are turned into an in-memory Optuna study (the sweep's own storage is not opened: it may be
another machine's database, or a file someone sent), so a grid sweep gets importances too. The evaluator is
Optuna's fANOVA (a random forest; its variance split per parameter), seeded, so the same sweep gives the same
numbers with any Optuna version."""

import contextlib
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

from mnistlab.sweeps.jobs import natural, numeric

IMPORTANCE_FILE = "importance.png"
EVALUATOR = "fANOVA"
UNSET = "(unset)"  # a job without the override: one more value of the parameter


@dataclass
class Importances:
    metrics: List[str]
    n_jobs: int = 0
    values: Dict[str, Dict[str, float]] = field(default_factory=dict)  # metric -> parameter -> importance
    note: str = ""  # why there are none

    def ranked(self) -> List[str]:
        """Parameters, the most important (for the first metric) first."""
        first = self.values[self.metrics[0]]
        return sorted(first, key=lambda p: (-first[p], p))


def distribution(values: List[str]):
    """The Optuna distribution the override values span (numbers as a range, anything else as choices), and the
    values as Optuna takes them."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    numbers = numeric(values)
    if numbers is None:
        return CategoricalDistribution(sorted(set(values), key=natural)), values
    if all(number.is_integer() and not any(c in v for c in ".eE") for number, v in zip(numbers, values)):
        ints = [int(number) for number in numbers]
        return IntDistribution(min(ints), max(ints)), ints
    return FloatDistribution(min(numbers), max(numbers)), numbers


@contextlib.contextmanager
def quiet_optuna():
    """Without Optuna's 'A new study created in memory' lines and experimental warnings."""
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def importances(jobs: list, params: List[str], metrics: List[str]) -> Importances:
    """Importances of the parameters that vary among the jobs with every metric, one set per metric."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    result = Importances(metrics)
    scored = [job for job in jobs if all(job.value(m) is not None for m in metrics)]
    result.n_jobs = len(scored)
    if len(scored) < 2:
        result.note = f"need at least 2 finished jobs with {' and '.join(metrics)}, have {len(scored)}"
        return result
    space, columns = {}, {}
    for key in params:
        raw = [job.overrides.get(key, UNSET) for job in scored]
        if len(set(raw)) > 1:
            space[key], columns[key] = distribution(raw)
            if space[key].single():  # e.g. 0.001 and 1e-3
                del space[key], columns[key]
    if len(space) < 2:  # one alone has importance 1 by definition
        varying = f"only {next(iter(space))} varies" if space else "no swept parameter varies"
        result.note = f"{varying} among the {len(scored)} finished jobs"
        return result
    with quiet_optuna():
        for metric in metrics:
            targets = [job.value(metric) for job in scored]
            if max(targets) - min(targets) <= 1e-12 * max(1.0, abs(max(targets))):
                result.values[metric] = {key: math.nan for key in space}  # nothing to explain
                continue
            study = optuna.create_study()
            for i, target in enumerate(targets):
                params_i = {key: columns[key][i] for key in space}
                study.add_trial(optuna.trial.create_trial(params=params_i, distributions=space, value=target))
            try:
                found = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0))
            except (ValueError, RuntimeError) as err:  # the summary still gets written
                result.values, result.note = {}, f"Optuna could not evaluate them for {metric}: {err}"
                return result
            result.values[metric] = {key: float(found.get(key, 0.0)) for key in space}
    return result


def shown(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def markdown(result: Importances) -> str:
    """The section of summary.md: a table, or the one-line reason there is none."""
    title = "Parameter importances"
    if result.note:
        return f"{title}: none ({result.note}).\n"
    same = [m for m in result.metrics if all(math.isnan(v) for v in result.values[m].values())]
    lines = [
        f"{title} (Optuna's {EVALUATOR} over {result.n_jobs} finished jobs; each column sums to 1"
        + (f"; n/a: {', '.join(same)} is the same in every job" if same else "")
        + "):",
        "",
        "| parameter | " + " | ".join(result.metrics) + " |",
        "|" + "|".join(" --- " for _ in range(len(result.metrics) + 1)) + "|",
    ]
    for key in result.ranked():
        lines.append(f"| {key} | " + " | ".join(shown(result.values[m][key]) for m in result.metrics) + " |")
    return "\n".join(lines) + "\n"


def plot(result: Importances, title: str, path: Path) -> bool:
    """Horizontal bars, one panel per metric, the most important parameter on top; False when none."""
    metrics = [m for m in result.metrics if not all(math.isnan(v) for v in result.values.get(m, {}).values())]
    if result.note or not metrics:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = result.ranked()[::-1]  # barh draws from the bottom
    width = max(len(key) for key in keys)
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(2.0 + 0.07 * width + 3.6 * len(metrics), 1.4 + 0.42 * len(keys)), squeeze=False
    )
    for i, (ax, metric) in enumerate(zip(axes.flat, metrics)):
        values = [result.values[metric][key] for key in keys]
        bars = ax.barh(range(len(keys)), values, color="tab:blue", height=0.6)
        ax.bar_label(bars, [f"{v:.2f}" for v in values], padding=3, fontsize=8)
        ax.set_yticks(range(len(keys)), keys if i == 0 else [""] * len(keys))
        ax.set_xlim(0, max(1.0, max(values)) * 1.15)
        ax.set_xlabel(f"importance for {metric}")
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"{title}\nparameter importances (Optuna's {EVALUATOR}, {result.n_jobs} finished jobs)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def section(jobs: list, params: List[str], metrics: List[str], title: str, sweep_dir: Path) -> tuple:
    """(the summary.md section, whether importance.png was written)."""
    result = importances(jobs, params, metrics)
    return markdown(result), plot(result, title, sweep_dir / IMPORTANCE_FILE)
