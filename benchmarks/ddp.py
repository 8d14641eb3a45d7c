"""Training samples per second of one run in 1 process and in 2 DDP processes on the CPU (informational).

    python benchmarks/ddp.py data.data_dir=<your MNIST folder> [--steps 200] [--repeats 2] [key=value ...]

Each is train.py as run by hand, `trainer=cpu` then `trainer=ddp_cpu` (model=mlp unless an override says
otherwise), timed for --steps and for 2 x --steps optimizer steps without validation: the difference is the
time of --steps steps with start-up, test and checkpoints left out. Samples count every process's batches.
The best of --repeats such pairs counts. Results and what they mean: docs/scaling.md.
"""

import argparse
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mnistlab.cli import ArgumentParser, run

ROOT = Path(__file__).resolve().parents[1]
SETUPS = {"cpu": 1, "ddp_cpu": 2}  # trainer preset: processes


def timed_run(overrides: list, steps: int, run_dir: Path) -> float:
    """Wall seconds of a whole train.py run of `steps` steps, no validation."""
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "train.py",
            "model=mlp",
            *overrides,
            f"trainer.max_steps={steps}",
            "trainer.max_epochs=-1",
            "+trainer.limit_val_batches=0",
            "report=false",
            "+trainer.enable_progress_bar=false",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or ["(no output)"]
        raise SystemExit(f"error: train.py {' '.join(overrides)} failed: {lines[-1]}")
    return time.perf_counter() - started


def samples_per_second(preset: str, overrides: list, steps: int, batch_size: int, work: Path) -> float:
    preset_overrides = [f"trainer={preset}", *overrides]
    short = timed_run(preset_overrides, steps, work / f"{preset}-{steps}")
    long = timed_run(preset_overrides, 2 * steps, work / f"{preset}-{2 * steps}")
    return steps * batch_size * SETUPS[preset] / (long - short) if long > short else math.nan  # too few steps


def batch_size_of(overrides: list) -> int:
    from hydra import compose, initialize_config_dir

    from mnistlab.settings.schema import register_schemas

    register_schemas()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return compose("train", overrides=["model=mlp", *overrides, "paths.output_dir=unused"]).data.batch_size


def main(argv=None) -> dict:
    parser = ArgumentParser(
        prog="benchmarks/ddp.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of conf/train.yaml, e.g. data.data_dir=...")
    parser.add_argument("--steps", type=int, default=200, help="timed optimizer steps per process (default 200)")
    parser.add_argument("--repeats", type=int, default=2, help="timings of each setup; the best counts (default 2)")
    args = parser.parse_intermixed_args(argv)
    if args.steps < 1 or args.repeats < 1:
        parser.error("--steps and --repeats must be positive")
    batch_size = batch_size_of(args.overrides)
    results = {}
    with tempfile.TemporaryDirectory(prefix="mnistlab-ddp-bench-") as tmp:
        for preset, processes in SETUPS.items():
            timings = [
                samples_per_second(preset, args.overrides, args.steps, batch_size, Path(tmp) / str(i))
                for i in range(args.repeats)
            ]
            results[preset] = max((value for value in timings if not math.isnan(value)), default=math.nan)
            ratio = results[preset] / results["cpu"]
            print(
                f"trainer={preset:8} {processes} process(es): {results[preset]:9.0f} samples/s  ({ratio:.2f}x)",
                flush=True,
            )
    return results


if __name__ == "__main__":
    run(main)
