"""Start-up of train.py, this checkout against another one (an older commit), whole process, side by side.

    mkdir ../before && git archive <commit> | tar -x -C ../before   # the other checkout, e.g. before a start-up change
    python benchmarks/startup.py --other ../before --other-python /path/to/its/python --data-dir <your MNIST folder>

Each repeat launches `python train.py experiment=speedrun` of both checkouts (who goes first alternates),
with benchmarks/first_step.py's FirstStepClock, which ends the process after the first training step.
Printed: seconds from launch to the start of fit and to the end of the first training step, medians; and, from
launches of to_task.py in the same turns, to train.py's task (its training stubbed: Hydra, composing and the
checks, no torch), the part of start-up that is mnistlab's and Hydra's alone. In the
same turns, plain_first_step.py (a plain PyTorch program: import torch, read the images, build the network and
Adam, one step) gives the floor that no framework can go under; this checkout's first step minus it is what the
framework adds.
Each checkout runs with its own interpreter (--python, --other-python), so that each can have the
packages it installs: start-up depends on what is installed as much as on the code (torchmetrics
imports torchvision and scipy whenever they are there).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def checkout_env(checkout: Path, *more: str) -> dict:
    """The environment that runs `checkout`'s train.py with its own mnistlab first on the path (then `more`)."""
    path = [str(checkout / "src"), *more, os.environ.get("PYTHONPATH")]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, path)))


def first_step_times(overrides: list, work: Path, checkout: Path = ROOT, python: str = sys.executable) -> dict:
    """Seconds from launching `python train.py` of `checkout` to fit start, training start and the end of the first
    training step (first_step.py's FirstStepClock stops the process there). Also for throughput.py and the race."""
    stamp = work / "first_step.json"
    stamp.unlink(missing_ok=True)
    env = checkout_env(checkout, str(ROOT / "benchmarks"))
    command = [python, str(checkout / "train.py"), *overrides, f"hydra.run.dir={work / 'first_step_run'}"]
    command += ["+callbacks.first_step._target_=first_step.FirstStepClock", f"+callbacks.first_step.path={stamp}"]
    launched = time.time()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if not stamp.exists():
        raise SystemExit(f"error: {' '.join(command)} stopped before its first step:\n{result.stderr[-3000:]}")
    return {event: at - launched for event, at in json.loads(stamp.read_text()).items()}


def to_task_seconds(overrides: list, work: Path, checkout: Path = ROOT, python: str = sys.executable) -> float:
    """Seconds from launching train.py of `checkout` (through to_task.py) to its task: torch is never imported."""
    env = checkout_env(checkout)
    command = [
        python,
        str(ROOT / "benchmarks" / "to_task.py"),
        str(checkout),
        *overrides,
        f"hydra.run.dir={work / 'to_task_run'}",
    ]
    launched = time.time()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0 or not result.stdout.strip():
        raise SystemExit(f"error: {' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])["task"] - launched


def plain_first_step_seconds(data_dir: Path, python: str = sys.executable) -> float:
    """Seconds from launching plain_first_step.py to the end of its first training step: start-up's floor."""
    launched = time.time()
    command = [python, str(ROOT / "benchmarks" / "plain_first_step.py"), str(data_dir)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"error: {' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])["first_step"] - launched


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--other", type=Path, required=True, help="another checkout of this repository")
    parser.add_argument("--python", default=sys.executable, help="interpreter for this checkout")
    parser.add_argument("--other-python", default=sys.executable, help="interpreter for the other checkout")
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="holds MNIST/raw/*.gz")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("overrides", nargs="*", help="extra train.py overrides for both checkouts")
    args = parser.parse_args(argv)
    if not (args.other / "train.py").is_file():
        raise SystemExit(f"error: {args.other} has no train.py: --other takes a checkout of this repository")
    speedrun = ["experiment=speedrun", f"data.data_dir={args.data_dir.resolve()}", "+trainer.enable_progress_bar=false"]
    sides = {"this": (ROOT, args.python), "other": (args.other.resolve(), args.other_python)}
    times: dict = {name: [] for name in [*sides, "plain"]}
    with tempfile.TemporaryDirectory(prefix="mnistlab-startup-") as tmp:
        for i in range(args.repeats):
            for name in [*sides, "plain"] if i % 2 == 0 else ["plain", *reversed(list(sides))]:
                if name == "plain":
                    times[name].append({"first_step": plain_first_step_seconds(args.data_dir.resolve(), args.python)})
                    continue
                work = Path(tmp, name)
                work.mkdir(exist_ok=True)
                times[name].append(first_step_times(speedrun + args.overrides, work, *sides[name]))
                times[name][-1]["task"] = to_task_seconds(speedrun + args.overrides, work, *sides[name])
    heads = f"{'task s':>6} {'fit start s':>11} {'first step s':>12}"
    print(f"{'checkout':<8} {'python':<28} {heads}  (medians of {args.repeats})")
    step = {name: statistics.median(t["first_step"] for t in runs) for name, runs in times.items()}
    for name, (checkout, python) in sides.items():
        fit, task = (statistics.median(t[event] for t in times[name]) for event in ("fit_start", "task"))
        print(f"{name:<8} {python[-28:]:<28} {task:>6.2f} {fit:>11.2f} {step[name]:>12.2f}   {checkout}")
    plain = f"{'-':>6} {'-':>11} {step['plain']:>12.2f}   benchmarks/plain_first_step.py"
    print(f"{'plain':<8} {args.python[-28:]:<28} {plain}")
    for name in sides:
        print(f"{name}: the framework adds {step[name] - step['plain']:.2f} s to a plain PyTorch program's first step")
    return times


if __name__ == "__main__":
    main()
