"""The record a sweep keeps of each job: <job dir>/job.json with its status, error, time and metrics."""

import json
import math
import traceback
from pathlib import Path
from typing import Any, Optional

from mnistlab.errors import one_line
from mnistlab.received.records import read_job_record, read_metrics
from mnistlab.received.yaml_file import read_yaml
from mnistlab.settings.overrides import PRUNING_CALLBACK

RECORD = "job.json"
PRUNING_OVERRIDE = f"+callbacks.{PRUNING_CALLBACK}"  # how the Optuna sweeper reaches a trial: not a parameter


def is_pruned(error: Any) -> bool:
    """optuna.TrialPruned, told by name so that grid sweeps need not import Optuna."""
    return isinstance(error, BaseException) and type(error).__name__ == "TrialPruned"


def describe_error(error: Any) -> str:
    return f"{type(error).__name__}: {one_line(error)}" if isinstance(error, BaseException) else str(error)


def finite(value: Any) -> Optional[float]:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def write_record(job_dir: Path, overrides: list, return_value: Any, completed: bool, seconds: float) -> dict:
    """Written by the job itself when it ends, so that every launcher (local, joblib, SLURM) leaves one."""
    record: dict = {
        "status": "ok" if completed else "pruned" if is_pruned(return_value) else "failed",
        "seconds": round(seconds, 3),
        "overrides": list(overrides),
    }
    if completed and isinstance(return_value, dict):
        record["metrics"] = {key: finite(value) for key, value in return_value.items()}
    if not completed:
        record["error"] = describe_error(return_value)
        record["traceback"] = "".join(traceback.format_exception(return_value))
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / RECORD).write_text(json.dumps(record, indent=2))
    return record


def read_record(job_dir: Path) -> dict:
    """A job's record, read at the boundary (mnistlab.received.records); a job without one (killed, or run before
    records existed) is rebuilt from its files."""

    path = job_dir / RECORD
    if path.exists():
        return read_job_record(path)
    overrides_file = job_dir / ".hydra" / "overrides.yaml"
    overrides = [str(item) for item in read_yaml(overrides_file, list)] if overrides_file.exists() else []
    metrics_file = job_dir / "metrics.json"
    if metrics_file.exists():
        return {"status": "ok", "seconds": None, "overrides": overrides, "metrics": read_metrics(metrics_file)}
    return {"status": "unfinished", "seconds": None, "overrides": overrides}
