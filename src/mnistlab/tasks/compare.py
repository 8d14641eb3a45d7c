"""Compare runs from any commands: one table with the overrides that differ, val/acc, test/acc, steps and
time; runs that differ only by `seed` or by cross-validation fold (`data.fold`) are one row with mean ± std and n.

    python compare.py <run or sweep dir> ... [--out DIR]
    python compare.py A B

Markdown goes to the console; --out DIR also writes compare.csv and compare.png (val/acc against step,
one colour per row). Given two paths, each a run or the runs of one configuration (a sweep over seeds or folds),
it then tells whether their test/acc differs: the difference A − B, its 95% confidence interval and p-value
(mnistlab.sweeps.significance), and which is better or that the data cannot tell.
"""

import csv
import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from mnistlab.cli import ArgumentParser
from mnistlab.errors import UserError
from mnistlab.received.predictions import read_predictions
from mnistlab.received.records import read_start_time
from mnistlab.runs.report import PREDICTIONS, pyplot, read_curves
from mnistlab.sweeps.jobs import Job, markdown, natural, parse_overrides, swept_keys
from mnistlab.sweeps.records import RECORD, read_record
from mnistlab.sweeps.seed_groups import REPLICATES, SEED, csv_rows, describe, group_jobs, markdown_rows, sort_groups
from mnistlab.sweeps.significance import mcnemar, numbers, paired, verdict, welch

METRICS = ["val/acc", "test/acc"]
TESTED = "test/acc"  # the metric that compare.py A B tests
PAIRED_BY = (SEED, "data.folds", "data.fold", "data.split_seed")  # runs with the same values of these pair up
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
    params = [key for key in keys if key not in REPLICATES]
    rows = markdown_rows(groups, params, METRICS)
    same = {key: value for key, value in jobs[0].overrides.items() if key not in keys}
    print(f"{len(jobs)} runs; those that differ only by seed or data.fold share a row: mean ± sample std over n")
    if same:
        print(f"Same in every run: {' '.join(f'{k}={v}' for k, v in same.items())}")
    print("\n" + markdown(rows, params) + "\n")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_csv(csv_rows(groups, params, METRICS), out / CSV_FILE)
        plot(groups, out / PLOT_FILE)
        print(f"written to {out}/: {CSV_FILE}, {PLOT_FILE}")
    if len(paths) == 2:
        print("\n".join(against(*paths)[1]))
    return rows


def side(path: Path) -> List[Job]:
    """The finished runs under path that have the tested metric."""
    return [job for job in (load_job(run_dir.resolve()) for run_dir in run_dirs(path)) if job.value(TESTED) is not None]


def configurations(jobs: List[Job]) -> List[str]:
    """The overrides that split these runs into more than one configuration (seeds and folds do not)."""
    return [key for key in swept_keys(jobs) if key not in REPLICATES]


def pair_key(job: Job) -> tuple:
    return tuple(job.overrides.get(key, "") for key in PAIRED_BY)


def by_pair(jobs: List[Job]) -> Optional[Dict[tuple, float]]:
    """Each run's metric by its seed and fold; None when two runs share them."""
    values = {pair_key(job): job.value(TESTED) for job in jobs}
    return values if len(values) == len(jobs) else None


def disagreements(a: Job, b: Job) -> Tuple[Optional[tuple], str]:
    """(right by A only, right by B only, images) from the two runs' recorded test predictions, or why not."""

    files = [Path(job.name) / PREDICTIONS for job in (a, b)]
    if not all(path.exists() for path in files):
        lacking = " and ".join(job.name for job, path in zip((a, b), files) if not path.exists())
        return None, (
            f"{lacking} kept no {PREDICTIONS} (run with report=false, or before it existed; "
            "python -m mnistlab.tasks.report <run> writes it)"
        )
    (labels_a, predicted_a), (labels_b, predicted_b) = (read_predictions(path) for path in files)
    if len(labels_a) != len(labels_b) or (labels_a != labels_b).any():
        return None, "the two runs were tested on different test sets"
    right_a, right_b = predicted_a == labels_a, predicted_b == labels_b
    return (int((right_a & ~right_b).sum()), int((right_b & ~right_a).sum()), len(labels_a)), ""


def test_of(jobs_a: List[Job], jobs_b: List[Job]):
    """The Difference of A and B by the test their runs allow, or the reason there is none."""

    if len(jobs_a) == 1 and len(jobs_b) == 1:
        counts, why = disagreements(jobs_a[0], jobs_b[0])
        return (mcnemar(*counts), "") if counts else (None, f"no McNemar test: {why}")
    pairs_a, pairs_b = by_pair(jobs_a), by_pair(jobs_b)
    if pairs_a is not None and pairs_b is not None and pairs_a.keys() == pairs_b.keys():
        keys = list(pairs_a)
        difference = paired([pairs_a[key] for key in keys], [pairs_b[key] for key in keys])
        difference.test += " of the same seed and fold"
        return difference, ""
    if len(jobs_a) >= 2 and len(jobs_b) >= 2:
        return welch([job.value(TESTED) for job in jobs_a], [job.value(TESTED) for job in jobs_b]), ""
    return None, (
        f"no test: A has {len(jobs_a)} finished run(s) and B {len(jobs_b)}; give each side two runs or more "
        "(seeds or folds), or one run each (McNemar's test on their test predictions)"
    )


def against(path_a: Path, path_b: Path):
    """(the Difference or None, the lines to print) of A's test/acc against B's."""

    jobs = {"A": side(path_a), "B": side(path_b)}
    lines = [f"{TESTED} of A against B:"]
    for name, path in (("A", path_a), ("B", path_b)):
        values = [job.value(TESTED) for job in jobs[name]]
        lines.append(f"  {name}: {os.path.relpath(path)}: {describe(values, 4) or 'no finished run'} (n={len(values)})")
    if {job.name for job in jobs["A"]} & {job.name for job in jobs["B"]}:
        return None, lines + ["  no test: A and B share runs"]
    for name in ("A", "B"):
        split = configurations(jobs[name])
        if split:
            return None, lines + [
                f"  no test: {name} holds runs of more than one configuration (they differ in {', '.join(split)}); "
                "name one run, or the runs of one configuration, on each side"
            ]
    difference, why = test_of(jobs["A"], jobs["B"])
    if difference is None:
        return None, lines + [f"  {why}"]
    return difference, lines + [f"  {numbers(difference)}", f"  {verdict(difference, metric=TESTED)}"]


def main(argv: Optional[list] = None) -> None:
    parser = ArgumentParser(prog="python compare.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", type=Path, nargs="+", help="run directories, or folders of runs (sweeps)")
    parser.add_argument("--out", type=Path, help="also write compare.csv and compare.png to this folder")
    args = parser.parse_args(argv)
    compare(args.paths, args.out)
