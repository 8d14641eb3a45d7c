"""SLURM preemption without a cluster: a scontrol stand-in records the requeue; the job's second start is the same
command with SLURM_RESTART_COUNT set, as SLURM runs a requeued job."""

import json
import os
import signal
import stat
import subprocess
import sys

import pytest
from helpers import ROOT, quick_overrides

KILLER = [
    "trusted_modules=[helpers.helper_callbacks]",
    "+callbacks.killer._target_=helpers.helper_callbacks.SignalAtStep",
    "+callbacks.killer.step=20",
    f"+callbacks.killer.signum={int(signal.SIGUSR1)}",  # `#SBATCH --signal=B:USR1@120`
]


def slurm_env(tmp_path, restarts: int) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "scontrol.log"}\n')
    scontrol.chmod(stat.S_IRWXU)
    return {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT / "tests"),
        "SLURM_JOB_ID": "4242",
        "SLURM_RESTART_COUNT": str(restarts),
    }


def train(args, cwd, env=None) -> subprocess.CompletedProcess:
    env = env or {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    command = [sys.executable, str(ROOT / "train.py"), *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def overrides(mnist_dir, killer=KILLER) -> list:
    quick = [o for o in quick_overrides(mnist_dir, "unused") if not o.startswith(("paths.", "trainer.max_epochs"))]
    return ["model=mlp", "model.net.hidden=[16]", "seed=0", "trainer.max_epochs=2", *quick, *killer]


def same_run(run, reference) -> None:
    assert json.loads((run / "metrics.json").read_text()) == json.loads((reference / "metrics.json").read_text())
    assert (run / "metrics.csv").read_text() == (reference / "metrics.csv").read_text()


@pytest.fixture(scope="module")
def reference(mnist_dir, tmp_path_factory):
    """The run never stopped."""
    folder = tmp_path_factory.mktemp("reference") / "run"
    never_stopped = train([*overrides(mnist_dir, killer=[]), f"hydra.run.dir={folder}"], folder.parent)
    assert never_stopped.returncode == 0, never_stopped.stderr[-3000:]
    return folder


@pytest.mark.process
def test_a_preempted_job_requeues_and_resume_auto_continues_its_run(mnist_dir, tmp_path, reference):

    job = [*overrides(mnist_dir), "resume=auto"]  # the job script's line, unchanged across requeues
    first = train(job, tmp_path, slurm_env(tmp_path, 0))
    assert first.returncode == 128 + signal.SIGUSR1, first.stderr[-3000:]
    assert "resume=auto: no unfinished run of this configuration with a checkpoint: starting a new run" in first.stdout
    assert "stopped by SIGUSR1: checkpoint of step 21 saved" in first.stderr
    assert "SLURM job 4242 requeued: it continues this run by itself" in first.stderr
    assert (tmp_path / "scontrol.log").read_text() == "requeue 4242\n"
    (run,) = [path.parents[1] for path in (tmp_path / "outputs").glob("*/*/.hydra/config.yaml")]
    assert not (run / "metrics.json").exists()

    requeued = train(job, tmp_path, slurm_env(tmp_path, 1))
    assert requeued.returncode == 0, requeued.stderr[-3000:]
    assert f"resume=auto: continuing the unfinished run {run.relative_to(tmp_path)}" in requeued.stdout
    assert len(list((tmp_path / "outputs").glob("*/*/.hydra"))) == 1  # no new run folder
    same_run(run, reference)


@pytest.mark.process
def test_a_requeued_sweep_job_continues_in_its_folder(mnist_dir, tmp_path, reference):
    sweep = ["-m", "hydra/sweeper=basic", *overrides(mnist_dir), f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    first = train(sweep, tmp_path, slurm_env(tmp_path, 0))  # as hydra/launcher=slurm runs one job of the array
    assert first.returncode == 128 + signal.SIGUSR1, first.stderr[-3000:]
    assert (tmp_path / "scontrol.log").read_text() == "requeue 4242\n"

    requeued = train(sweep, tmp_path, slurm_env(tmp_path, 1))  # the same job, started again by SLURM
    assert requeued.returncode == 0, requeued.stderr[-3000:]
    assert f"requeued SLURM job: continuing its sweep job in {tmp_path / 'sweep' / '0'}" in requeued.stdout
    same_run(tmp_path / "sweep" / "0", reference)
