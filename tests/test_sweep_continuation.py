"""A grid sweep killed with SIGKILL in its 4th job, run again with the same command in the same folder: the
finished jobs are skipped, the interrupted one continues from its checkpoint, the rest run; the summary is that of
a sweep never stopped."""

import csv
import json
import os
import signal
import subprocess
import sys

import pytest
from helpers import ROOT, quick_overrides
from helpers.sweep_hooks import ARMED

# 500 training images in batches of 32: 16 steps an epoch; job 3 is killed in its second epoch, after last.ckpt
GRID = ["model=mlp", "model.net.hidden=[16]", "optimizer.lr=1e-3,3e-3,1e-2", "seed=0,1", "trainer.max_epochs=2"]
KILL = [
    "trusted_modules=[helpers.sweep_hooks]",
    "+callbacks.kill._target_=helpers.sweep_hooks.KillJobAtStep",
    "+callbacks.kill.job=3",
    "+callbacks.kill.step=21",
]


def command(mnist_dir, sweep_dir) -> list:
    quick = [o for o in quick_overrides(mnist_dir, sweep_dir) if not o.startswith(("paths.", "trainer.max_epochs"))]
    return ["train.py", "-m", *GRID, *KILL, *quick, f"hydra.sweep.dir={sweep_dir}"]


def sweep(args, armed=False) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests"), ARMED: "1" if armed else "0"}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def results(sweep_dir) -> dict:
    """Each job's settings -> its final metrics, and its metrics.csv."""
    with open(sweep_dir / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    found = {}
    for row in rows:
        job = sweep_dir / row["job"]
        settings = (row["optimizer.lr"], row["seed"], row["status"])
        metrics = json.loads((job / "metrics.json").read_text())
        found[settings] = (metrics, (job / "metrics.csv").read_text())
    return found


def killed_beside_never_stopped(make_command, mnist_dir, tmp_path):
    """The sweep run to its end in never_stopped/, and SIGKILLed in its 4th job in killed/ (returned)."""
    never_stopped = sweep(make_command(mnist_dir, tmp_path / "never_stopped"))
    assert never_stopped.returncode == 0, never_stopped.stderr[-3000:]
    folder = tmp_path / "killed"
    killed = sweep(make_command(mnist_dir, folder), armed=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    return folder


@pytest.mark.process
def test_a_killed_grid_sweep_continues_and_ends_as_if_never_stopped(mnist_dir, tmp_path):
    folder = killed_beside_never_stopped(command, mnist_dir, tmp_path)
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["0", "1", "2", "3"]
    assert not (folder / "3" / "job.json").exists()

    again = sweep(command(mnist_dir, folder))
    assert again.returncode == 0, again.stderr[-3000:]
    out = again.stdout
    assert f"[sweep] continuing the sweep in {folder}: 6 jobs" in out
    assert "[sweep] 3 skipped, finished already: 0, 1, 2" in out
    assert "[sweep] 1 continued from their newest checkpoint: 3 (from step 16)" in out
    assert "[sweep] 2 new: 4, 5" in out
    assert "continuing the run in" in out  # the job itself says where it continues
    with open(folder / "summary.csv") as f:
        assert sorted(row["job"] for row in csv.DictReader(f)) == ["0", "1", "2", "3", "4", "5"]
    assert results(folder) == results(tmp_path / "never_stopped")

    once_more = sweep(command(mnist_dir, folder))  # nothing left: every job skipped, the summary again
    assert "[sweep] 6 skipped, finished already: 0, 1, 2, 3, 4, 5" in once_more.stdout
    assert results(folder) == results(tmp_path / "never_stopped")

    grown = sweep([*command(mnist_dir, folder)[:-1], "optimizer.lr=1e-3,3e-3,1e-2,3e-2", f"hydra.sweep.dir={folder}"])
    assert grown.returncode == 0, grown.stderr[-3000:]
    assert "[sweep] 6 skipped, finished already" in grown.stdout and "[sweep] 2 new: 6, 7" in grown.stdout


# Never prunes (val/acc >= 0), but every job reports each validation to its trial, through its callback
NEVER_PRUNES = "hydra.sweeper.pruner={_target_: optuna.pruners.ThresholdPruner, lower: 0.0}"


def optuna_command(mnist_dir, sweep_dir, *extra) -> list:
    quick = [o for o in quick_overrides(mnist_dir, sweep_dir) if not o.startswith(("paths.", "trainer.max_epochs"))]
    return [
        "train.py",
        "-m",
        "hydra/sweeper=mnistlab_optuna",
        "hydra.sweeper.n_trials=6",
        "hydra.sweeper.sampler.seed=0",
        "model=mlp",
        "model.net.hidden=[16]",
        "optimizer.lr=tag(log, interval(1e-3, 1e-1))",
        "trainer.max_epochs=2",
        *KILL,
        *quick,
        *extra,
        f"hydra.sweep.dir={sweep_dir}",
    ]


def study_results(sweep_dir) -> list:
    """The counted trials in their order: parameters, value, what they reported to the pruner, and their job's
    final metrics and metrics.csv."""
    import optuna

    study = optuna.load_study(study_name="mnistlab", storage=f"sqlite:///{sweep_dir / 'optuna.db'}")
    trials = [t for t in study.trials if not t.user_attrs.get("interrupted")]
    return [
        (
            t.params,
            t.value,
            t.intermediate_values,
            json.loads((sweep_dir / str(t.number) / "metrics.json").read_text()),
            (sweep_dir / str(t.number) / "metrics.csv").read_text(),
        )
        for t in trials
    ]


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param([], marks=pytest.mark.slow),
        # the continued job takes its trial's pruning callback from its command line, not from the saved config
        # (where it names the interrupted trial), and goes on counting validations from its checkpoint
        pytest.param([NEVER_PRUNES], marks=pytest.mark.process, id="pruner"),
    ],
)
def test_a_killed_optuna_study_continues_its_trial_and_ends_as_if_never_stopped(mnist_dir, tmp_path, extra):
    folder = killed_beside_never_stopped(lambda *args: optuna_command(*args, *extra), mnist_dir, tmp_path)

    again = sweep(optuna_command(mnist_dir, folder, *extra))
    assert again.returncode == 0, again.stderr[-3000:]
    out = again.stdout
    assert "[sweep] 3 of 6 trials already finished" in out
    assert "[sweep] trial 3 was left running by an interrupted sweep: it runs again" in out
    assert "[sweep] trial 4 continues trial 3 from step 16 (folder 4)" in out
    assert sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) == [0, 1, 2, 4, 5, 6]
    assert study_results(folder) == study_results(tmp_path / "never_stopped")


def write_job(sweep_dir, name, overrides, status, step=None):
    """A job folder as a sweep leaves it: Hydra's overrides, a job.json unless it never ended, a checkpoint."""
    import torch
    import yaml

    job = sweep_dir / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if status != "unfinished":
        (job / "job.json").write_text(json.dumps({"status": status, "seconds": 1.0, "overrides": overrides}))
    if step is not None:
        (job / "checkpoints").mkdir()
        torch.save({"global_step": step, "epoch": 0, "state_dict": {}}, job / "checkpoints" / "last.ckpt")


def test_each_old_job_is_skipped_continued_or_run_again_by_its_overrides(tmp_path):
    from mnistlab.sweeps import continuation

    sweep_dir = tmp_path / "sweep"
    write_job(sweep_dir, "0", ["optimizer.lr=1e-3", "seed=0"], "ok")
    write_job(sweep_dir, "1", ["optimizer.lr=1e-3", "seed=1"], "pruned")
    write_job(sweep_dir, "2", ["optimizer.lr=3e-3", "seed=0"], "failed", step=8)  # e.g. a full disk: continues
    write_job(sweep_dir, "3", ["optimizer.lr=3e-3", "seed=1"], "unfinished", step=16)
    write_job(sweep_dir, "4", ["optimizer.lr=1e-2", "seed=0"], "unfinished")  # killed before a checkpoint
    write_job(sweep_dir, "5", ["optimizer.lr=1e-2", "seed=1"], "failed")  # e.g. a bad value: nothing to go on
    write_job(sweep_dir, ".attempts/9", ["optimizer.lr=1e-2", "seed=1"], "ok")  # an earlier try: not a job
    jobs = [[f"optimizer.lr={lr}", f"seed={seed}"] for lr in ("0.001", "0.003", "0.01", "0.03") for seed in (0, 1)]

    planned = continuation.plan(sweep_dir, jobs)
    assert [(job.folder, job.action, job.step) for job in planned] == [
        ("0", "skip", None),
        ("1", "skip", None),  # 1e-3 and 0.001 are one value
        ("2", "continue", 8),
        ("3", "continue", 16),
        ("4", "rerun", None),
        ("5", "rerun", None),
        ("6", "new", None),
        ("7", "new", None),
    ]
    assert continuation.describe(planned) == [
        "[sweep] 2 skipped, finished already: 0, 1",
        "[sweep] 2 continued from their newest checkpoint: 2 (from step 8), 3 (from step 16)",
        "[sweep] 2 run again, with no checkpoint to continue from (the earlier try is in .attempts/): 4, 5",
        "[sweep] 2 new: 6, 7",
    ]
    resumed = continuation.launch_overrides(planned[3], sweep_dir)
    assert resumed[:2] == jobs[3] and resumed[2] == "hydra.sweep.subdir='3'"
    assert resumed[3] == f"resume='{(sweep_dir / '3').absolute()}'" and resumed[4] == "hydra.output_subdir=null"
    assert continuation.set_aside(sweep_dir, "5") == sweep_dir / ".attempts" / "5-1"
    assert not (sweep_dir / "5").exists() and (sweep_dir / ".attempts" / "5-1" / "job.json").exists()
    assert continuation.plan(tmp_path / "fresh", jobs[:2])[0].folder is None  # a new sweep: Hydra's own folders


def test_a_linked_old_sweep_folder_is_refused(tmp_path):
    from mnistlab.errors import ReceivedFileError
    from mnistlab.sweeps import continuation

    sweep_dir = tmp_path / "sweep"
    write_job(sweep_dir, "0", ["seed=0"], "unfinished", step=4)
    (tmp_path / "elsewhere").mkdir()
    (sweep_dir / "0" / "checkpoints" / "outside").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ReceivedFileError):
        continuation.plan(sweep_dir, [["seed=0"]])
