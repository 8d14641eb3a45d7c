"""Sweeps: failing jobs, the Optuna sweeper (resume, pruning, failure cap), launchers and the summary."""

import csv
import json
import subprocess
import sys

import pytest
import yaml
from helpers import CONF, ROOT, quick_overrides, run_script, stand_in_slurm

from mnistlab.errors import ConfigError

MLP = ["model=mlp", "model.net.hidden=[16]"]


def sweep_overrides(mnist_dir, sweep_dir) -> list:
    """Small runs on the synthetic data, each job in <sweep_dir>/<job number>."""
    return [o for o in quick_overrides(mnist_dir, sweep_dir) if not o.startswith("paths.")] + [
        f"hydra.sweep.dir={sweep_dir}"
    ]


def read_summary(sweep_dir) -> list:
    with open(sweep_dir / "summary.csv") as f:
        return list(csv.DictReader(f))


def load_study(sweep_dir, name="mnistlab"):
    import optuna

    return optuna.load_study(study_name=name, storage=f"sqlite:///{sweep_dir / 'optuna.db'}")


@pytest.mark.process
def test_grid_sweep_records_a_diverging_job_and_runs_the_rest(mnist_dir, tmp_path):
    sweep = tmp_path / "sweep"
    result = run_script(
        "train.py",
        "-m",
        *MLP,
        "optimizer=glob(s*)",
        "optimizer.lr=choice(0.2, 1e20, 0.05)",
        "seed=range(0, 1)",
        *sweep_overrides(mnist_dir, sweep),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        "[sweep] job 1 failed: TrainingDiverged: training diverged: the loss became nan between steps" in result.stdout
    )
    rows = read_summary(sweep)
    assert [(r["job"], r["status"], r["optimizer.lr"]) for r in rows][-1] == ("1", "failed", "1e+20")
    assert {r["job"] for r in rows[:2]} == {"0", "2"} and all(r["status"] == "ok" for r in rows[:2])
    assert float(rows[0]["val/acc"]) >= float(rows[1]["val/acc"])  # sorted by the metric
    assert all(float(r["test/acc"]) > 0.5 and float(r["time (s)"]) > 0 for r in rows[:2])
    assert "TrainingDiverged" in rows[2]["error"] and not rows[2]["val/acc"]
    assert list(rows[0])[:3] == ["job", "status", "optimizer.lr"]  # only the swept key gets a column
    record = json.loads((sweep / "1" / "job.json").read_text())
    assert record["status"] == "failed" and "Traceback" in record["traceback"]
    assert (sweep / "summary.png").read_bytes()[:4] == b"\x89PNG"
    assert "| job | status | optimizer.lr | val/acc | test/acc | time (s) | error |" in result.stdout


@pytest.mark.process
def test_a_single_diverging_run_stops_with_one_line(mnist_dir, tmp_path):
    result = run_script(
        "train.py",
        *MLP,
        "optimizer=sgd",
        "optimizer.lr=1e20",
        *quick_overrides(mnist_dir, tmp_path),
        f"hydra.run.dir={tmp_path}",
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip().splitlines()[-1].startswith("error: training diverged: the loss became nan between steps")
    )
    assert "Traceback" not in result.stderr


@pytest.mark.process
def test_grid_failure_cap_stops_the_sweep(mnist_dir, tmp_path):
    sweep = tmp_path / "sweep"
    result = run_script(
        "train.py",
        "-m",
        *MLP,
        "model.net.dropout=1.5,1.6,0.0",
        "hydra.sweeper.max_batch_size=1",
        "hydra.sweeper.max_failure_rate=0.3",
        *sweep_overrides(mnist_dir, sweep),
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: sweep stopped: 1 of 3 jobs failed, more than max_failure_rate=0.3 allows; "
        "last error: ConfigError: model.net.dropout must be in [0, 1), got 1.5"
    )
    assert not (sweep / "1").exists()  # stopped after the first batch ...
    assert [r["status"] for r in read_summary(sweep)] == ["failed"]  # ... and still summarised


@pytest.mark.process
def test_optuna_study_continues_without_rerunning_finished_trials(mnist_dir, tmp_path):
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState

    sweep = tmp_path / "sweep"
    command = [
        "train.py",
        "-m",
        "hydra/sweeper=mnistlab_optuna",
        "hydra.sweeper.sampler.seed=0",
        "model=softmax",
        "optimizer.lr=tag(log, interval(1e-3, 1e-1))",
        *sweep_overrides(mnist_dir, sweep),
    ]
    first = run_script(*command, "hydra.sweeper.n_trials=2")
    assert first.returncode == 0, first.stderr[-3000:]
    best = yaml.safe_load((sweep / "best_params.yaml").read_text())
    study = load_study(sweep)
    assert best["trials"] == {"complete": 2, "pruned": 0, "failed": 0}
    assert (
        best["best_value"]
        == study.best_value
        == json.loads((sweep / str(study.best_trial.number) / "metrics.json").read_text())["val/acc"]
    )  # validation, not test
    assert 1e-3 <= best["best_params"]["optimizer.lr"] <= 1e-1
    assert f"optimizer.lr={best['best_params']['optimizer.lr']}" in best["command"]

    # a sweep killed while trials 2 and 3 ran: they stay RUNNING in the storage; trial 2's job had
    # ended (its job.json says so), trial 3's had not
    lr = {"optimizer.lr": FloatDistribution(1e-3, 1e-1, log=True)}
    ended, stale = study.ask(lr), study.ask(lr)
    write_job(sweep, "2", [f"optimizer.lr={ended.params['optimizer.lr']}"], "ok", {"val/acc": 0.5})
    again = run_script(*command, "hydra.sweeper.n_trials=5")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "trial 2 had ended (ok) when the sweep was interrupted: told from its job.json" in again.stdout
    assert "trial 3 was left running by an interrupted sweep: it runs again" in again.stdout
    assert "3 of 5 trials already finished" in again.stdout
    assert "TPESampler (seed 0 + the trial's place in the study)" in again.stdout
    trials = load_study(sweep).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3 + [TrialState.FAIL] + [TrialState.COMPLETE] * 2
    assert trials[2].value == 0.5 and trials[3].user_attrs == {"interrupted": True}
    assert trials[4].params == stale.params and trials[4].user_attrs["retry_of"] == 3
    assert trials[5].params not in [t.params for t in trials[:5]]  # the seeded sampler does not start over
    assert sorted(p.name for p in sweep.iterdir() if p.name.isdigit()) == ["0", "1", "2", "4", "5"]  # job = trial
    assert len(read_summary(sweep)) == 5

    done = run_script(*command, "hydra.sweeper.n_trials=5")  # the same command once more: nothing to run
    assert done.returncode == 0 and "5 of 5 trials already finished" in done.stdout
    assert "Launching" not in done.stdout + done.stderr and len(load_study(sweep).trials) == 6


@pytest.mark.process
def test_optuna_pruning_with_parallel_jobs(mnist_dir, tmp_path):
    from optuna.trial import TrialState

    from mnistlab.sweeps.parallel import cpu_count

    sweep = tmp_path / "sweep"
    pruner = "hydra.sweeper.pruner={_target_: optuna.pruners.ThresholdPruner, lower: 1.01}"  # prunes every trial
    result = run_script(
        "train.py",
        "-m",
        "hydra/sweeper=mnistlab_optuna",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "hydra.sweeper.n_trials=2",
        pruner,
        "model=softmax",
        "optimizer.lr=tag(log, interval(1e-3, 1e-1))",
        "trainer.max_epochs=2",
        *sweep_overrides(mnist_dir, sweep),
        "threads=null",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert [t.state for t in load_study(sweep).trials] == [TrialState.PRUNED] * 2
    assert [t.intermediate_values.keys() for t in load_study(sweep).trials] == [{0}, {0}]  # the first validation
    rows = read_summary(sweep)
    assert [r["status"] for r in rows] == ["pruned", "pruned"]
    assert all(r["error"].startswith("TrialPruned: pruned after validation 1: val/acc") for r in rows)
    assert "+callbacks.optuna_pruning" not in rows[0]  # bookkeeping, not a parameter
    threads = max(1, cpu_count() // 2)  # two jobs at once share the cores
    for job in ("0", "1"):
        assert f"torch CPU threads: {threads}" in (sweep / job / "train.log").read_text()


@pytest.mark.process
def test_optuna_failure_cap_and_test_metric_refused(mnist_dir, tmp_path):
    sweep = tmp_path / "sweep"
    common = [
        "train.py",
        "-m",
        "hydra/sweeper=mnistlab_optuna",
        *MLP,
        "model.net.dropout=interval(1.0, 2.0)",
        *sweep_overrides(mnist_dir, sweep),
    ]
    result = run_script(*common, "hydra.sweeper.n_trials=4", "hydra.sweeper.max_failure_rate=0.25")
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "error: sweep stopped: 2 of 4 trials failed, more than max_failure_rate=0.25 allows; last error: "
            "ConfigError: model.net.dropout must be in [0, 1)"
        )
    )
    assert [t.user_attrs["error"][:45] for t in load_study(sweep).trials] == [
        "ConfigError: model.net.dropout must be in [0,"
    ] * 2
    assert [r["status"] for r in read_summary(sweep)] == ["failed", "failed"]

    test_metric = run_script(*common, "hydra.sweeper.metric=test/acc", f"hydra.sweep.dir={tmp_path}/other")
    assert test_metric.returncode == 2
    assert test_metric.stderr.strip() == (
        "error: hydra.sweeper.metric=test/acc would tune on the test set: use a val/ metric"
    )


@pytest.mark.process
def test_submitit_local_launcher_runs_a_two_job_sweep(mnist_dir, tmp_path):
    sweep = tmp_path / "sweep"
    result = run_script(
        "train.py",
        "-m",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=5",
        "model=softmax",
        "optimizer.lr=0.01,0.1",
        *sweep_overrides(mnist_dir, sweep),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (sweep / ".submitit").is_dir()
    rows = read_summary(sweep)
    assert sorted((r["job"], r["status"]) for r in rows) == [("0", "ok"), ("1", "ok")]
    assert all(float(r["val/acc"]) > 0.5 for r in rows)


def test_slurm_launcher_config_becomes_the_sbatch_script(tmp_path):
    """No cluster here: stand-ins for srun and sbatch; sbatch keeps the script it is given and refuses it."""
    env, script = stand_in_slurm(tmp_path)
    subprocess.run(
        [
            sys.executable,
            "train.py",
            "-m",
            "hydra/launcher=slurm",
            "hydra.launcher.partition=gpu",
            "hydra.launcher.timeout_min=30",
            "hydra.launcher.array_parallelism=1",
            "model=softmax",
            "optimizer.lr=0.01,0.1",
            f"hydra.sweep.dir={tmp_path}/sweep",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = set(script.read_text().splitlines())
    assert {
        "#SBATCH --partition=gpu",
        "#SBATCH --time=30",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --array=0-1%1",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks-per-node=1",
    } <= lines


def compose_with_hydra(overrides: list):
    from hydra import compose, initialize_config_dir

    from mnistlab.settings.schema import register_schemas

    register_schemas()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=True)


def test_hydra_discovers_both_sweepers():
    from hydra.core.plugins import Plugins
    from hydra.plugins.sweeper import Sweeper

    names = {f"{c.__module__}.{c.__name__}" for c in Plugins.instance().discover(Sweeper)}
    assert {
        "hydra_plugins.mnistlab_sweepers.grid_sweeper.GridSweeper",
        "hydra_plugins.mnistlab_sweepers.optuna_sweeper.OptunaSweeper",
    } <= names


@pytest.mark.parametrize("search", ["cnn_optuna", "lstm_optuna"])
def test_each_search_space_covers_the_usual_hyperparameters(search):
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from hydra_plugins.mnistlab_sweepers._search_space import split

    cfg = compose_with_hydra([f"hparams_search={search}"])
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.metric == "val/acc"
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler" and sweeper.sampler.seed == 42
    space, fixed = split([f"{k}={v}" for k, v in sweeper.params.items()], None)
    assert fixed == []
    assert space["optimizer.lr"] == FloatDistribution(1e-4, 1e-2, log=True)
    assert isinstance(space["data.batch_size"], CategoricalDistribution)
    assert isinstance(space["model.net.dropout"], FloatDistribution)
    assert 0.0 in space["optimizer.weight_decay"].choices
    hidden = space["model.net.fc_size" if search == "cnn_optuna" else "model.net.hidden_size"]
    assert isinstance(hidden, (CategoricalDistribution, IntDistribution))


def test_sweep_overrides_become_optuna_distributions():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from hydra_plugins.mnistlab_sweepers._search_space import as_overrides, split

    space, fixed = split(
        [
            "a=range(64, 257, 64)",
            "b=interval(0, 10)",
            "c=tag(log, interval(1e-4, 1))",
            "d=choice([16], [32, 32])",
            "e=range(0.0, 1.0, 0.25)",
            "f=3",
            "f=choice(1, 2)",
            "g=x",
        ],
        None,
    )
    assert space == {
        "a": IntDistribution(64, 256, step=64),
        "b": FloatDistribution(0.0, 10.0),
        "c": FloatDistribution(1e-4, 1.0, log=True),
        "d": CategoricalDistribution(["[16]", "[32,32]"]),
        "e": FloatDistribution(0.0, 0.75, step=0.25),
        "f": CategoricalDistribution([1, 2]),
    }
    assert fixed == ["g=x"]  # f: the later override wins
    assert as_overrides({"d": "[32,32]", "c": 0.001, "a": 128, "h": True}) == [
        "d=[32,32]",
        "c=0.001",
        "a=128",
        "h=True",
    ]
    with pytest.raises(ConfigError, match="c=tag"):
        split(["c=tag(log, interval(0.0, 1.0))"], None)


def test_threads_are_shared_between_parallel_jobs():
    from mnistlab.sweeps.parallel import jobs_at_once, threads_per_job

    assert threads_per_job({"_target_": "BasicLauncher"}, cores=8) is None  # one job at a time: torch's default
    assert threads_per_job({"n_jobs": 2}, cores=2) == 1
    assert threads_per_job({"n_jobs": 2}, cores=16) == 8
    assert threads_per_job({"n_jobs": -1}, cores=4) == 1 and jobs_at_once({"n_jobs": -2}, cores=4) == 3
    assert threads_per_job({"n_jobs": 8}, cores=2) == 1
    assert threads_per_job({"cpus_per_task": 6, "n_jobs": None}, cores=64) == 6


def test_failure_cap_counts_against_the_planned_jobs():
    from hydra_plugins.mnistlab_sweepers._failures import FailureCap

    cap = FailureCap(0.5, planned=4)
    cap.fail("job 0", "boom")
    cap.fail("job 1", "boom")
    assert not cap.exceeded()  # 2 of 4 may still end at the cap
    cap.fail("job 2", "bang")
    assert cap.exceeded() and cap.stop_message("jobs").endswith("last error: bang")
    with pytest.raises(Exception, match="max_failure_rate must be in"):
        FailureCap(1.5, planned=4)


def write_job(sweep_dir, name, overrides, status, metrics=None, error=None, seconds=1.0):
    job = sweep_dir / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if status != "unfinished":
        record = {"status": status, "seconds": seconds, "overrides": overrides, "metrics": metrics or {}}
        (job / "job.json").write_text(json.dumps({**record, **({"error": error} if error else {})}))


def test_summary_rebuilds_any_sweep(tmp_path, capsys, monkeypatch):
    from mnistlab.tasks.summary import main

    sweep = tmp_path / "sweep"
    pruning = "+callbacks.optuna_pruning={_target_:x,trial_id:%d}"
    write_job(
        sweep,
        "0",
        ["model=cnn", "optimizer.lr=0.001", "seed=1", pruning % 0],
        "ok",
        {"val/acc": 0.95, "test/acc": 0.94},
    )
    write_job(
        sweep,
        "1",
        ["model=lstm", "optimizer.lr=0.001", "seed=1", pruning % 1],
        "failed",
        error="TrainingDiverged: training diverged",
    )
    write_job(
        sweep,
        "2",
        ["model=cnn", "optimizer.lr=0.0003", "seed=1", pruning % 2],
        "ok",
        {"val/acc": 0.97, "test/acc": 0.96},
    )
    write_job(
        sweep,
        "10",
        ["model=lstm", "optimizer.lr=0.0003", "seed=1", pruning % 10],
        "pruned",
        error="TrialPruned: pruned after validation 1: val/acc 0.2",
    )
    write_job(sweep, "3", ["model=lstm", "optimizer.lr=0.01", "seed=1", pruning % 3], "unfinished")
    main([str(sweep)])
    rows = read_summary(sweep)
    assert [(r["job"], r["status"]) for r in rows] == [
        ("2", "ok"),
        ("0", "ok"),
        ("10", "pruned"),
        ("1", "failed"),
        ("3", "unfinished"),
    ]
    assert list(rows[0]) == [
        "job",
        "status",
        "model",
        "optimizer.lr",
        "val/acc",
        "test/acc",
        "time (s)",
        "error",
        "overrides",
    ]
    assert rows[0]["val/acc"] == "0.9700" and rows[3]["error"] == "TrainingDiverged: training diverged"
    printed = capsys.readouterr().out
    assert "5 jobs (2 ok, 1 pruned, 1 failed, 1 unfinished), sorted by val/acc, highest first" in printed
    assert "Same in every job: seed=1\n" in printed
    assert "| 2 | ok | cnn | 0.0003 | 0.9700 | 0.9600 | 1.0 |  |" in printed
    assert (sweep / "summary.md").read_text() in printed
    assert (sweep / "summary.png").read_bytes()[:4] == b"\x89PNG"

    main([str(sweep), "--metric", "test/acc", "--direction", "minimize"])
    assert [r["job"] for r in read_summary(sweep)][:2] == ["0", "2"]

    monkeypatch.setattr("mnistlab.tasks.summary.CONSOLE_ROWS", 2)  # a long sweep: the console gets the best rows
    capsys.readouterr()
    main([str(sweep)])
    printed = capsys.readouterr().out
    assert "| 0 | ok |" in printed and "| 10 |" not in printed and "... 3 more rows in summary.md" in printed
    assert len(read_summary(sweep)) == 5


def test_summary_of_a_folder_without_jobs_is_one_line(tmp_path):
    result = run_script("-m", "mnistlab.tasks.summary", str(tmp_path))
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"error: {tmp_path} holds no sweep jobs (no <job>/.hydra/overrides.yaml or <job>/job.json)"
    )
