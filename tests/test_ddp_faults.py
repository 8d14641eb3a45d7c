"""DDP faults (trainer=ddp_cpu: 2 CPU processes started by Lightning's launcher, gloo): a process killed in
mid-epoch, or a loss gone NaN in one process only, stops every process of the run within seconds with one
`error:` line, and `resume=` finishes the run, with the epoch's train/* values of a run never stopped."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT, quick_overrides

TESTS = ROOT / "tests"
STEPS_PER_EPOCH = 8  # 500 training images: 250 per process, in batches of 32
KILL_AT = 14  # in the second epoch, two steps after its step checkpoint (every 4 steps: 12)


def overrides(mnist_dir: Path, run_dir: Path) -> list:
    quick = [o for o in quick_overrides(mnist_dir, run_dir) if not o.startswith("paths.")]
    return quick + [
        "trainer=ddp_cpu",
        "model=softmax",
        "seed=0",
        "trainer.max_epochs=2",
        "callbacks.recent.every_n_train_steps=4",
        f"hydra.run.dir={run_dir}",
    ]


def start(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(TESTS)])}
    return subprocess.Popen(
        [sys.executable, "train.py", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen, timeout: int = 300) -> tuple:
    stdout, stderr = process.communicate(timeout=timeout)
    return process.returncode, stdout, stderr


def processes_of(run_dir: Path) -> list:
    """The pids of the processes whose command line names `run_dir` (rank 0 and the process it started)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(run_dir).encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:  # ended meanwhile
            pass
    return found


def error_lines(stderr: str) -> list:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def kill_one_process(rank: int, step: int, note: Path) -> list:
    return [
        "+callbacks.killer._target_=helpers.helper_callbacks.SignalOneProcessAtStep",
        f"+callbacks.killer.step={step}",
        f"+callbacks.killer.signum={int(signal.SIGKILL)}",
        f"+callbacks.killer.rank={rank}",
        f"+callbacks.killer.note={note}",
    ]


def killed_run(mnist_dir: Path, run_dir: Path, rank: int) -> tuple:
    """A run whose process `rank` is killed in mid-epoch: (exit code, stderr, seconds from the kill until every
    process of the run was gone)."""
    note = run_dir.parent / f"{run_dir.name}.killed"
    run = start(*overrides(mnist_dir, run_dir), *kill_one_process(rank, KILL_AT, note))
    code, _, stderr = finish(run)
    while processes_of(run_dir) and time.time() - float(note.read_text()) < 60:
        time.sleep(0.1)
    return code, stderr, time.time() - float(note.read_text())


def resume(run_dir: Path) -> tuple:
    return finish(start(f"resume={run_dir}", "+callbacks.killer=null"))


def epoch_values(run_dir: Path) -> list:
    """metrics.csv's rows of the epochs' train/* values, whole."""
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    columns = lines[0].split(",")
    wanted = [i for i, name in enumerate(columns) if name.startswith("train/") and name.endswith("_epoch")]
    return [line for line in lines[1:] if any(line.split(",")[i] for i in wanted)]


@pytest.mark.process
def test_a_killed_process_stops_the_run_in_one_line_and_resume_finishes_it(mnist_dir, tmp_path):
    run_dir = tmp_path / "run"
    code, stderr, seconds = killed_run(mnist_dir, run_dir, rank=1)
    assert code == 1, stderr[-3000:]
    assert error_lines(stderr) == [
        f"error: process 1 of this DDP run was killed by SIGKILL; all its processes stopped; continue with: "
        f"python train.py resume={os.path.relpath(run_dir, ROOT)}"
    ]
    assert "Traceback" not in stderr
    assert seconds < 60 and not processes_of(run_dir)
    assert not (run_dir / "metrics.json").exists()

    code, stdout, stderr = resume(run_dir)
    assert code == 0, stderr[-3000:]
    assert "test/acc" in stdout
    resumed_from = [line for line in (run_dir / "train.log").read_text().splitlines() if "resuming from" in line]
    assert resumed_from[-1].endswith("step000012.ckpt")  # in mid-epoch: the epoch's sums of both processes
    assert len(epoch_values(run_dir)) == 2


@pytest.mark.process
def test_a_loss_gone_nan_in_one_process_stops_every_process_with_one_line(mnist_dir, tmp_path):
    """Checked every step here: at step 11 the loss is NaN in process 1 only (process 0's follows a step
    later, through the averaged gradients); unless both agree, process 1 alone stops there."""
    run_dir = tmp_path / "run"
    nan = [
        "callbacks.divergence.every_n_steps=1",
        "+callbacks.nan._target_=helpers.helper_callbacks.NaNWeightsInOneProcess",
        f"+callbacks.nan.step={KILL_AT - 4}",
        "+callbacks.nan.rank=1",
    ]
    code, _, stderr = finish(start(*overrides(mnist_dir, run_dir), *nan))
    assert code == 2, stderr[-3000:]
    step = KILL_AT - 3
    assert error_lines(stderr) == [
        f"error: training diverged: the loss became nan between steps {step} and {step} (epoch 1); "
        "try a lower optimizer.lr"
    ]
    assert "Traceback" not in stderr and not processes_of(run_dir)


@pytest.mark.slow
def test_resumed_in_mid_epoch_the_run_logs_what_a_run_never_stopped_logs(mnist_dir, tmp_path):
    """Every process's part of the epoch's sums is in the checkpoint: each gets its own back (before, rank 0's
    went to both, and the epoch's train/* averages were only close)."""
    never_stopped = tmp_path / "never_stopped"
    reference = start(*overrides(mnist_dir, never_stopped))
    run_dir = tmp_path / "run"
    code, stderr, _ = killed_run(mnist_dir, run_dir, rank=1)
    assert code == 1, stderr[-3000:]
    code, _, stderr = resume(run_dir)
    assert code == 0, stderr[-3000:]
    code, _, stderr = finish(reference)
    assert code == 0, stderr[-3000:]
    assert epoch_values(run_dir) == epoch_values(never_stopped)
    assert (run_dir / "metrics.csv").read_text() == (never_stopped / "metrics.csv").read_text()
    assert (run_dir / "metrics.json").read_text() == (never_stopped / "metrics.json").read_text()


@pytest.mark.slow
def test_when_rank_zero_is_killed_the_other_process_says_so_and_exits(mnist_dir, tmp_path):
    run_dir = tmp_path / "run"
    code, stderr, seconds = killed_run(mnist_dir, run_dir, rank=0)
    assert code == -signal.SIGKILL
    assert error_lines(stderr) == [
        f"error: process 0 of this DDP run stopped; all its processes stopped; continue with: "
        f"python train.py resume={os.path.relpath(run_dir, ROOT)}"
    ]
    assert seconds < 60 and not processes_of(run_dir)
    code, stdout, stderr = resume(run_dir)
    assert code == 0 and "test/acc" in stdout, stderr[-3000:]


@pytest.mark.process
def test_a_signal_to_one_process_stops_every_process_at_the_same_step(mnist_dir, tmp_path):
    """SIGTERM to process 1 only (as `kill` of one task, or a preemption warning reaching one process): the
    processes agree at the next batch's end, all save interrupted.ckpt at the same step and stop; resume= ends
    the run. Without the agreement process 1 would save alone and wait for process 0 in the save."""
    run_dir = tmp_path / "run"
    terminate = [
        "+callbacks.killer._target_=helpers.helper_callbacks.SignalOneProcessAtStep",
        f"+callbacks.killer.step={KILL_AT}",
        f"+callbacks.killer.signum={int(signal.SIGTERM)}",
        "+callbacks.killer.rank=1",
    ]
    code, _, stderr = finish(start(*overrides(mnist_dir, run_dir), *terminate), timeout=240)
    assert code == 128 + signal.SIGTERM, stderr[-3000:]
    assert f"stopped by SIGTERM: checkpoint of step {KILL_AT + 1} saved" in stderr
    assert "Traceback" not in stderr and not processes_of(run_dir)
    code, stdout, stderr = resume(run_dir)
    assert code == 0, stderr[-3000:]
    resumed_from = [line for line in (run_dir / "train.log").read_text().splitlines() if "resuming from" in line]
    assert resumed_from[-1].endswith("interrupted.ckpt")
