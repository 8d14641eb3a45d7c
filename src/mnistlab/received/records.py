"""A run's or sweep job's JSON records as typed values: metrics.json (name -> number), job.json (status,
seconds, overrides, metrics, error) and env.json (when the run started). Anything else in them is left out."""

import json
import math
import re
from datetime import datetime
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from mnistlab.errors import ReceivedFileError
from mnistlab.received.files import read_text
from mnistlab.settings.limits import MAX_CSV_BYTES, MAX_TEXT_BYTES

STATUSES = ("ok", "pruned", "failed", "unfinished")
MAX_METRIC = 1e15  # larger values are no metric of a run; their means and spreads would overflow
MAX_COLUMNS = 256  # of metrics.csv


def read_json(path):
    text = read_text(path, MAX_TEXT_BYTES)
    try:
        return json.loads(text, parse_constant=lambda name: float(name.lower().replace("infinity", "inf")))
    except (ValueError, RecursionError) as err:
        raise ReceivedFileError(f"{path}: not valid JSON ({str(err)[:120]})") from None


def number(value) -> Optional[float]:
    """A finite number, else None (a NaN metric of a diverged run is no number to rank)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:  # an integer of more digits than a float holds
        return None
    return value if math.isfinite(value) and abs(value) <= MAX_METRIC else None


def metrics_of(data, path, where: str = "") -> dict:
    """name -> float (or None for a value that is not a finite number); names are strings."""
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise ReceivedFileError(f"{path}: {where or 'metrics'} must map names to numbers, found a {kind}")
    return {str(name)[:200]: number(value) for name, value in data.items()}


def read_metrics(path) -> dict:
    """metrics.json: the final metrics of a run."""
    return metrics_of(read_json(path), path)


def read_job_record(path) -> dict:
    """job.json: {status, seconds, overrides: [str], metrics: {str: float|None}, error: str|None}."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise ReceivedFileError(f"{path}: a job record must be a JSON object, found a {type(data).__name__}")
    status = data.get("status")
    if status not in STATUSES:
        raise ReceivedFileError(f"{path}: status must be one of {', '.join(STATUSES)}, found {str(status)[:40]!r}")
    overrides = data.get("overrides") or []
    if not isinstance(overrides, list) or not all(isinstance(item, str) for item in overrides):
        raise ReceivedFileError(f"{path}: overrides must be a list of key=value strings")
    seconds = number(data.get("seconds"))
    error = data.get("error")
    return {
        "status": status,
        "seconds": seconds if seconds is not None and seconds >= 0 else None,
        "overrides": overrides,
        "metrics": metrics_of(data.get("metrics") or {}, path, "metrics"),
        "error": str(error)[:2000] if error is not None else None,
    }


def read_start_time(path) -> Optional[float]:
    """env.json's `started` as a POSIX timestamp, or None where it has none that parses."""
    data = read_json(path)
    started = data.get("started") if isinstance(data, dict) else None
    if not isinstance(started, str):
        return None
    try:
        return datetime.fromisoformat(started).timestamp()
    except (ValueError, OverflowError, OSError):
        return None


def read_curves(path) -> Dict[str, Tuple[List[int], List[float]]]:
    """metrics.csv: each column (but step and epoch) as (steps, values), its empty or non-numeric cells left out."""
    import csv
    import io

    if not Path(path).exists():
        return {}
    curves: Dict[str, Tuple[List[int], List[float]]] = {}
    try:
        reader = csv.DictReader(io.StringIO(read_text(path, MAX_CSV_BYTES)))
        if len(reader.fieldnames or []) > MAX_COLUMNS:
            raise ReceivedFileError(f"{path}: over {MAX_COLUMNS} columns; not a metrics file of train.py")
        for row in reader:
            step = number(to_float(row.get("step")))
            if step is None or not 0 <= step < 2**53:
                continue
            for name, value in row.items():
                value = number(to_float(value))
                if isinstance(name, str) and name not in ("step", "epoch") and value is not None:
                    steps, values = curves.setdefault(name[:200], ([], []))
                    steps.append(int(step))
                    values.append(value)
    except csv.Error as err:
        raise ReceivedFileError(f"{path}: not a readable CSV file ({err})") from None
    return curves


def to_float(text) -> Optional[float]:
    try:
        return float(text) if isinstance(text, str) and text else None
    except ValueError:
        return None


def read_metric_rows(path) -> Tuple[List[str], List[dict]]:
    """metrics.csv as (column names, rows), for a resumed run to keep the rows before its checkpoint's step:
    rows without a whole, non-negative step are left out."""
    import csv
    import io

    try:
        reader = csv.DictReader(io.StringIO(read_text(path, MAX_CSV_BYTES)))
        keys = [str(key) for key in reader.fieldnames or []]
        if len(keys) > MAX_COLUMNS:
            raise ReceivedFileError(f"{path}: over {MAX_COLUMNS} columns; not a metrics file of train.py")
        rows = []
        for row in reader:
            step = number(to_float(row.get("step")))
            if step is not None and 0 <= step < 2**53 and None not in row:  # None: more cells than columns
                rows.append({**row, "step": str(int(step))})
    except csv.Error as err:
        raise ReceivedFileError(f"{path}: not a readable CSV file ({err})") from None
    return keys, rows


TRACKERS = ("mlflow", "wandb")
TRACKER_RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # MLflow's 32 hex digits, W&B's 8 characters or a chosen id


def read_tracker_runs(path) -> Dict[str, str]:
    """trackers.json: tracker (mlflow, wandb) -> the id of the tracker's run that a resumed run continues.
    Other entries are left out; an id that is not a short string of letters, digits, `-` and `_` is refused."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise ReceivedFileError(f"{path}: must map trackers to run ids, found a {type(data).__name__}")
    runs = {}
    for tracker in TRACKERS:
        run_id = data.get(tracker)
        if run_id is None:
            continue
        if not isinstance(run_id, str) or not TRACKER_RUN_ID.fullmatch(run_id):
            raise ReceivedFileError(
                f"{path}: {tracker} must be a run id of at most 64 letters, digits, '-' and '_', "
                f"found {str(run_id)[:40]!r}"
            )
        runs[tracker] = run_id
    return runs
