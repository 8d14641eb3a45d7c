"""Rerun experiment presets over seeds and rebuild the results table in docs/results.md.

    python scripts/results.py --data-dir <your MNIST folder> --experiments cnn_tutorial --seeds 0 1 2

Each (preset, seed) runs `python train.py experiment=<preset> seed=<seed>` as a user would; its
test accuracy, steps and whole-process wall-clock time go to docs/results.json (a run of the same
preset and seed replaces the old one), and the table between the markers in docs/results.md is
rebuilt from that file.
"""

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- results:start -->", "<!-- results:end -->"


def run_once(experiment: str, seed: int, data_dir: str, out_dir: Path) -> dict:
    run_dir = out_dir / experiment / f"seed{seed}"
    command = [
        sys.executable,
        "train.py",
        f"experiment={experiment}",
        f"seed={seed}",
        f"data.data_dir={data_dir}",
        f"hydra.run.dir={run_dir}",
        "+trainer.enable_progress_bar=false",
    ]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"error: {experiment} seed {seed} failed:\n{result.stderr[-2000:]}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {
        "experiment": experiment,
        "seed": seed,
        "test_acc": metrics["test/acc"],
        "val_acc": metrics.get("val/acc"),
        "steps": metrics["step"],
        "seconds": round(seconds, 1),
        "machine": f"{platform.machine()}, {cpu_count()} CPU cores",
    }


def cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def table(runs: list) -> str:
    rows = [
        "| preset | test accuracy (%) | seeds | steps | wall-clock (s) | command |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for experiment in dict.fromkeys(run["experiment"] for run in runs):
        mine = [run for run in runs if run["experiment"] == experiment]
        accs = [100 * run["test_acc"] for run in mine]
        spread = f" ± {statistics.stdev(accs):.2f}" if len(accs) > 1 else ""
        seconds = statistics.median(run["seconds"] for run in mine)
        rows.append(
            f"| `{experiment}` | {statistics.mean(accs):.2f}{spread} | {len(mine)} "
            f"({', '.join(str(run['seed']) for run in mine)}) | {mine[0]['steps']} | {seconds:.0f} | "
            f"`python train.py experiment={experiment} seed=<seed> data.data_dir=<your MNIST folder>` |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", nargs="+", required=True, help="presets from conf/experiment/")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--data-dir", default="data", help="folder holding MNIST/raw/")
    parser.add_argument("--out-dir", default="outputs/results", type=Path, help="where the runs write")
    parser.add_argument("--docs", default=ROOT / "docs", type=Path, help="holds results.json and results.md")
    args = parser.parse_args()

    record = args.docs / "results.json"
    runs = json.loads(record.read_text()) if record.exists() else []
    for experiment in args.experiments:
        for seed in args.seeds:
            run = run_once(experiment, seed, args.data_dir, args.out_dir)
            print(
                f"{experiment} seed {seed}: test/acc {run['test_acc']:.4f}, {run['steps']} steps, {run['seconds']} s",
                flush=True,
            )
            same = [i for i, r in enumerate(runs) if (r["experiment"], r["seed"]) == (experiment, seed)]
            runs = runs[: same[0]] + [run] + runs[same[0] + 1 :] if same else runs + [run]  # a rerun keeps its row
            record.write_text(json.dumps(runs, indent=1) + "\n")

    page = args.docs / "results.md"
    text = page.read_text() if page.exists() else f"# Results\n\n{START}\n{END}\n"
    head, rest = text.split(START)
    page.write_text(f"{head}{START}\n{table(runs)}\n{END}{rest.split(END)[1]}")
    print(f"table rebuilt in {page}")


if __name__ == "__main__":
    main()
