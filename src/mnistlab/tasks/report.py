"""The report task: remake a run's report.png, report.md and test_predictions.csv (mnistlab.runs.report),
testing its best checkpoint (the one train.py tested) again.

    python -m mnistlab.tasks.report <run dir> [--data-dir DIR]
"""

import sys
from pathlib import Path
from typing import Optional

from mnistlab.callbacks.predictions import RecordPredictions
from mnistlab.cli import ArgumentParser, run
from mnistlab.errors import UserError
from mnistlab.received.files import refuse_links
from mnistlab.received.records import read_metrics
from mnistlab.runs.checkpoints import resolve_checkpoint
from mnistlab.runs.evaluator import Evaluator, quiet_lightning
from mnistlab.runs.report import MARKDOWN, PICTURE, write_report
from mnistlab.runs.run_dir import is_run_dir


def remake(run_dir: Path, data_dir: Optional[str] = None) -> None:
    """Tests the run's best checkpoint again to write its report."""
    if not is_run_dir(run_dir):
        raise UserError(f"{run_dir} is not a run directory of train.py (no .hydra/config.yaml in it)")
    refuse_links(run_dir)  # report.png and report.md are written there
    quiet_lightning()
    checkpoint = resolve_checkpoint(run_dir)
    recorder = RecordPredictions()
    tested = Evaluator(run_dir, data_dir)(checkpoint, "test", callbacks=[recorder])
    metrics_file = run_dir / "metrics.json"
    metrics = read_metrics(metrics_file) if metrics_file.exists() else tested
    write_report(run_dir, recorder.predictions, metrics, tested_step=tested["step"])
    print(f"report written: {run_dir / PICTURE}, {run_dir / MARKDOWN}")


def main(argv: Optional[list] = None) -> None:
    parser = ArgumentParser(prog="python -m mnistlab.tasks.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a run directory of train.py, e.g. outputs/2026-01-01/12-00-00")
    parser.add_argument("--data-dir", help="the folder holding MNIST/raw/ (default: the run's data.data_dir)")
    args = parser.parse_args(argv)
    remake(args.run_dir, args.data_dir)


if __name__ == "__main__":
    run(lambda: main(sys.argv[1:]))
