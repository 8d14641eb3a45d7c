"""The Optuna sweeper's side of several objectives (mnistlab.sweeps.objectives): the checks, the line printed
per trial, and the Pareto front written to best_params.yaml in place of a single best trial."""

from typing import Any, Dict, List

from mnistlab.errors import ConfigError
from mnistlab.sweeps.objectives import Objectives, shown_value

from ._search_space import as_overrides


def check(objectives: Objectives, pruner_config: Any) -> None:
    for metric in objectives.metrics:
        if metric.startswith("test/"):
            raise ConfigError(f"hydra.sweeper.metric={metric} would tune on the test set: use a val/ metric")
    if objectives.multi and pruner_config:  # Optuna's trial.report takes one value
        raise ConfigError(
            f"pruning needs a single objective, and hydra.sweeper.metric has {len(objectives.metrics)}: "
            "drop hydra/sweeper/pruner (hydra/sweeper/pruner=null)"
        )


def check_study(study, objectives: Objectives, study_name: str) -> None:
    """A continued study must optimise in the same directions (Optuna loads it whatever this sweep says)."""
    had = [direction.name.lower() for direction in study.directions]
    if had != list(objectives.directions):
        raise ConfigError(
            f"study '{study_name}' was created to {', '.join(had)}, this sweep asks to "
            f"{', '.join(objectives.directions)} ({objectives.names}): set another hydra.sweeper.study_name or "
            "hydra.sweep.dir"
        )


def progress(study, trial_number: int, objectives: Objectives, values: List[float]) -> str:
    """The line printed once a trial is told."""
    if not objectives.multi:
        return (
            f"[sweep] trial {trial_number}: {objectives.metrics[0]} {values[0]:.4f} (best so far "
            f"{study.best_value:.4f}, trial {study.best_trial.number})"
        )
    front = sorted(t.number for t in study.best_trials)
    told = ", ".join(f"{metric} {shown_value(value)}" for metric, value in zip(objectives.metrics, values))
    return f"[sweep] trial {trial_number}: {told} (Pareto front so far: trial(s) {', '.join(map(str, front))})"


def pareto_front(study, objectives: Objectives, fixed: List[str]) -> List[Dict[str, Any]]:
    """The study's Pareto-optimal trials, best first by the first objective, each with its rerun command."""

    sign = -1.0 if objectives.directions[0] == "maximize" else 1.0
    trials = sorted(study.best_trials, key=lambda t: (sign * t.values[0], t.number))
    return [
        {
            "trial": trial.number,
            "values": dict(zip(objectives.metrics, trial.values)),
            "params": dict(trial.params),
            "command": "python train.py " + " ".join(fixed + as_overrides(trial.params)),
        }
        for trial in trials
    ]


def front_line(front: List[Dict[str, Any]]) -> str:
    if not front:
        return "[sweep] no trial completed: no Pareto front"
    trials = ", ".join(str(entry["trial"]) for entry in front)
    return f"[sweep] Pareto front: trial(s) {trials}; best_params.yaml has the command that reruns each"
