"""Two Optuna sweeps at once on one study (as on two machines): n_trials in all, each trial once, the whole
study in both summaries. Through a real PostgreSQL server and through a journal file."""

import csv
import os
import subprocess
import sys
import time

import pytest
import yaml
from helpers import ROOT, quick_overrides

N_TRIALS = 4
POSTGRES_URL = os.environ.get("MNISTLAB_TEST_POSTGRES_URL") or None  # .ci/run starts a server and sets it


def sweep_command(data_dir, storage: str, study: str, sweep_dir) -> list:
    return [
        sys.executable,
        "train.py",
        "-m",
        "hydra/sweeper=mnistlab_optuna",
        "hydra.sweeper.sampler.seed=0",
        f"hydra.sweeper.n_trials={N_TRIALS}",
        f"hydra.sweeper.storage={storage}",
        f"hydra.sweeper.study_name={study}",
        "model=softmax",
        "optimizer.lr=tag(log, interval(1e-3, 1e-1))",
        *[o for o in quick_overrides(data_dir, sweep_dir) if not o.startswith("paths.")],
        f"hydra.sweep.dir={sweep_dir}",
    ]


def start(command: list) -> subprocess.Popen:
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_line(sweep: subprocess.Popen, text: str) -> list:
    """The sweep's output lines up to the first that holds `text`."""
    lines = []
    while not lines or text not in lines[-1]:
        line = sweep.stdout.readline()
        assert line, f"the sweep ended without printing {text!r}: {sweep.communicate()[1][-3000:]}"
        lines.append(line)
    return lines


def finish(sweep: subprocess.Popen, earlier: list = ()) -> str:
    out, err = sweep.communicate(timeout=240)
    assert sweep.returncode == 0, err[-3000:]
    return "".join(earlier) + out


def load_study(storage: str, name: str):
    import optuna

    from mnistlab.sweeps.study_storage import open_storage

    return optuna.load_study(study_name=name, storage=open_storage(storage))


def check_shared(storage: str, name: str, sweep_dirs: list, outputs: list) -> None:
    from optuna.trial import TrialState

    trials = load_study(storage, name).get_trials()
    run = [t for t in trials if not t.user_attrs.get("surplus")]  # asked after the others took the last ones
    assert [t.state for t in run] == [TrialState.COMPLETE] * N_TRIALS
    assert len({t.params["optimizer.lr"] for t in run}) == N_TRIALS  # two sampler seeds, not one twice
    ran_here = [{int(p.parent.name) for p in d.glob("*/.hydra")} for d in sweep_dirs]
    assert not ran_here[0] & ran_here[1] and ran_here[0] | ran_here[1] == {t.number for t in run}
    for sweep_dir, output in zip(sweep_dirs, outputs):
        with open(sweep_dir / "summary.csv") as f:
            assert sorted(int(row["job"]) for row in csv.DictReader(f)) == [t.number for t in run]
        best = yaml.safe_load((sweep_dir / "best_params.yaml").read_text())
        assert best["trials"] == {"complete": N_TRIALS, "pruned": 0, "failed": 0}
        assert "left running by an interrupted sweep" not in output  # neither took the other's trials for dead


@pytest.mark.skipif(POSTGRES_URL is None, reason="MNISTLAB_TEST_POSTGRES_URL is not set (.ci/run starts a server)")
@pytest.mark.process
def test_two_sweeps_started_at_once_share_a_postgresql_study(mnist_dir, tmp_path):
    name = f"shared-{os.getpid()}-{time.time_ns()}"  # a new study in the server's database
    dirs = [tmp_path / "a", tmp_path / "b"]  # as on two machines: no folder in common
    sweeps = [start(sweep_command(mnist_dir, POSTGRES_URL, name, d)) for d in dirs]
    outputs = [finish(sweep) for sweep in sweeps]
    check_shared(POSTGRES_URL, name, dirs, outputs)
    assert all(any(d.glob("*/.hydra")) for d in dirs)  # each sweep ran a share


@pytest.mark.process
def test_a_sweep_joining_a_running_one_on_a_journal_file(mnist_dir, tmp_path):
    storage = f"journal://{tmp_path / 'shared-disk' / 'study.log'}"
    dirs = [tmp_path / "a", tmp_path / "b"]
    first = start(sweep_command(mnist_dir, storage, "shared", dirs[0]))
    earlier = wait_for_line(first, "trials drawn by")  # its first trial is running when the second starts
    second = start(sweep_command(mnist_dir, storage, "shared", dirs[1]))
    outputs = [finish(first, earlier), finish(second)]
    check_shared(storage, "shared", dirs, outputs)
