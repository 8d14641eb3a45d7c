"""Compare runs from any commands: one table with the overrides that differ, val/acc, test/acc, steps and
time; runs that differ only by `seed` are one row with mean ± std and n.

    python compare.py <run or sweep dir> ... [--out DIR]

Markdown goes to the console; --out DIR also writes compare.csv and compare.png (val/acc against step,
one colour per row).
"""

import csv
import os
from pathlib import Path
from typing import List, Optional

from mnistlab.cli import ArgumentParser
from mnistlab.errors import UserError
from mnistlab.sweeps.records import RECORD, read_record
from mnistlab.sweeps.seed_groups import SEED, csv_rows, group_jobs, markdown_rows, sort_groups
from mnistlab.sweeps.summary import Job, markdown, natural, parse_overrides, swept_keys

METRICS = ["val/acc", "test/acc"]
CSV_FILE, PLOT_FILE = "compare.csv", "compare.png"


def is_run(path: Path) -> bool:
    return (path / ".hydra" / "overrides.yaml").is_file() or (path / RECORD).is_file()


def run_dirs(path: Path) -> List[Path]:
    """The run itself, or every run below a folder (a sweep, a day of outputs/)."""
    if not path.is_dir():
        raise UserError(f"{path}: no such folder")
    if is_run(path):
        return [path]
    found = {p.parent.parent for p in path.glob("**/.hydra/overrides.yaml")}
    found |= {p.parent for p in path.glob(f"**/{RECORD}")}
    if not found:
        raise UserError(f"{path} is not a run of train.py and holds none (no .hydra/overrides.yaml in it or below it)")
    return sorted(found, key=lambda d: natural(str(d)))


def seconds_of(run_dir: Path) -> Optional[float]:
    """A single run keeps no job.json: from its start (env.json) to its final metrics.json."""
    from mnistlab.received.records import read_start_time

    env, final = run_dir / "env.json", run_dir / "metrics.json"
    if not (env.exists() and final.exists()):
        return None
    started = read_start_time(env)
    return final.stat().st_mtime - started if started is not None else None


def load_job(run_dir: Path) -> Job:
    record = read_record(run_dir)
    seconds = record.get("seconds")
    return Job(
        name=os.path.relpath(run_dir),
        status=record["status"],
        overrides=parse_overrides(record.get("overrides") or []),
        metrics=record.get("metrics") or {},
        seconds=seconds if seconds is not None else seconds_of(run_dir),
        error=record.get("error"),
    )


def plot(groups: list, path: Path) -> None:
    """val/acc against step of every run, one colour per group."""
    from mnistlab.runs.report import pyplot, read_curves

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    colours = plt.get_cmap("tab10")
    for n, group in enumerate(groups):
        label = " ".join(f"{key}={value}" for key, value in group.settings.items() if value != "") or "all runs"
        for job in group.jobs:
            steps, values = read_curves(Path(job.name)).get("val/acc", ([], []))
            ax.plot(steps, values, "o-", ms=3, lw=1.2, color=colours(n % 10), label=label)
            label = None  # one legend entry per group
    ax.set(xlabel="step", ylabel="val/acc", title=f"val/acc of {sum(len(g.jobs) for g in groups)} runs")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_csv(rows: List[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def compare(paths: List[Path], out: Optional[Path] = None) -> List[dict]:
    """Prints the table (and writes the files to `out`); returns its Markdown rows."""
    found = dict.fromkeys(run_dir.resolve() for path in paths for run_dir in run_dirs(path))  # each run once
    jobs = [load_job(run_dir) for run_dir in found]
    keys = swept_keys(jobs)
    groups = sort_groups(group_jobs(jobs, keys), METRICS[0])
    params = [key for key in keys if key != SEED]
    rows = markdown_rows(groups, params, METRICS)
    same = {key: value for key, value in jobs[0].overrides.items() if key not in keys}
    print(f"{len(jobs)} runs; those that differ only by seed share a row: mean ± sample std over n")
    if same:
        print(f"Same in every run: {' '.join(f'{k}={v}' for k, v in same.items())}")
    print("\n" + markdown(rows, params) + "\n")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_csv(csv_rows(groups, params, METRICS), out / CSV_FILE)
        plot(groups, out / PLOT_FILE)
        print(f"written to {out}/: {CSV_FILE}, {PLOT_FILE}")
    return rows


def main(argv: Optional[list] = None) -> None:
    parser = ArgumentParser(prog="python compare.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", type=Path, nargs="+", help="run directories, or folders of runs (sweeps)")
    parser.add_argument("--out", type=Path, help="also write compare.csv and compare.png to this folder")
    args = parser.parse_args(argv)
    compare(args.paths, args.out)
