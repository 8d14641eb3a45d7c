"""What a sweep's summary adds below its table: which parameters mattered (a table, importance.png), every
finished job across all parameters at once (parallel_coordinates.png) and, with several objectives, their
Pareto front (a table with rerun commands, pareto.png)."""

from pathlib import Path
from typing import List, Tuple

from mnistlab.sweeps import importance, parallel_coordinates, pareto
from mnistlab.sweeps.objectives import Objectives


def insights(jobs: list, params: List[str], objectives: Objectives, sweep_dir: Path) -> Tuple[str, List[str]]:
    """(the text for summary.md and the console, the plots written); a plot an earlier summary left that this one
    does not draw (e.g. other metrics) is removed."""
    title = sweep_dir.name
    text, plotted = importance.section(jobs, params, list(objectives.metrics), title, sweep_dir)
    drawn = {importance.IMPORTANCE_FILE: plotted}
    drawn[parallel_coordinates.PARALLEL_FILE] = parallel_coordinates.plot(
        jobs, params, objectives, title, sweep_dir / parallel_coordinates.PARALLEL_FILE
    )
    if objectives.multi:
        front_text, drawn[pareto.PARETO_FILE] = pareto.section(jobs, params, objectives, title, sweep_dir)
        text += "\n" + front_text
    else:
        drawn[pareto.PARETO_FILE] = False
    for name, done in drawn.items():
        if not done and (sweep_dir / name).exists():
            (sweep_dir / name).unlink()
    return "\n" + text, [name for name, done in drawn.items() if done]
