"""logger=mlflow and logger=wandb: a short run's metrics read back through each tracker's own reader, offline;
and a stopped run, resumed, continues its TensorBoard files, its MLflow run and its W&B run."""

import json
import os
import signal
import subprocess
import sys

import pytest
from helpers import ROOT, compose, quick_overrides
from helpers.tool_config import train_run

from mnistlab.errors import ReceivedFileError
from mnistlab.received.records import read_tracker_runs

RUN = ["model=softmax", "trainer.max_epochs=2"]
STEPS = 32  # 2 epochs of 16 steps
# killed (kill -9) at step 10: the newest checkpoint is step 8's, and steps 8 and 9 were logged by the killed run
KILLED = [
    "seed=0",
    "callbacks.recent.every_n_train_steps=4",
    "+callbacks.killer._target_=helpers.helper_callbacks.SignalAtStep",
    "+callbacks.killer.step=10",
    f"+callbacks.killer.signum={int(signal.SIGKILL)}",
]


def train_script(*args, cwd=ROOT, killed=False):
    """train.py in a process of its own (in `cwd`: MLflow's default store is relative to it)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")])}
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == (-signal.SIGKILL if killed else 0), result.stderr[-3000:]
    return result


def killed_and_resumed(mnist_dir, run_dir, overrides: list, cwd=ROOT) -> None:
    quick = [o for o in quick_overrides(mnist_dir, run_dir) if not o.startswith("paths.")]
    train_script(*quick, *RUN, *KILLED, *overrides, f"hydra.run.dir={run_dir}", cwd=cwd, killed=True)
    train_script(f"resume={run_dir}", "+callbacks.killer=null", cwd=cwd)


def tensorboard_scalars(folder) -> dict:
    """tag -> [(step, value)] as TensorBoard shows them (its reader leaves out purged events)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})  # 0: every event, not a sample
    events.Reload()
    return {tag: [(event.step, event.value) for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


@pytest.mark.process
def test_a_killed_run_resumed_continues_its_tensorboard_curves(mnist_dir, tmp_path):
    killed_and_resumed(mnist_dir, tmp_path / "resumed", [])
    train_run(mnist_dir, tmp_path / "uninterrupted", RUN + [o for o in KILLED if "killer" not in o])
    resumed = tensorboard_scalars(tmp_path / "resumed" / "tensorboard")
    assert len(list((tmp_path / "resumed" / "tensorboard").glob("events.out.tfevents.*"))) >= 2  # one folder
    assert [step for step, _ in resumed["train/loss_step"]] == list(range(STEPS))  # 8 and 9 once, none missing
    assert resumed == tensorboard_scalars(tmp_path / "uninterrupted" / "tensorboard")  # every tag, step and value


def test_mlflow_keeps_the_runs_metrics_in_a_local_store(mnist_dir, tmp_path):
    pytest.importorskip("mlflow", reason="logger=mlflow needs mlflow: pip install 'mnistlab[trackers]'")
    from mlflow.tracking import MlflowClient

    default = compose(["logger=mlflow"]).logger
    assert (
        default.mlflow.tracking_uri.startswith("sqlite:///outputs/") and "csv" in default and "tensorboard" in default
    )
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    run_dir = tmp_path / "run"
    metrics = train_run(
        mnist_dir,
        run_dir,
        RUN
        + [
            "logger=mlflow",
            f"logger.mlflow.tracking_uri='{uri}'",
            f"logger.mlflow.artifact_location={tmp_path / 'artifacts'}",
        ],
    )
    client = MlflowClient(uri)
    [run] = client.search_runs([client.get_experiment_by_name("mnistlab").experiment_id])
    assert run.data.tags["run_dir"] == str(run_dir)
    assert run.data.metrics["test/acc"] == pytest.approx(metrics["test/acc"])
    val_acc = client.get_metric_history(run.info.run_id, "val/acc")
    assert [m.step for m in val_acc] == [15, 31]  # after each of the 2 epochs of 16 steps
    assert max(m.value for m in val_acc) == pytest.approx(metrics["val/acc"])
    assert run.data.params["optimizer/lr"] == str(compose([]).optimizer.lr)
    assert (run_dir / "metrics.csv").exists()  # beside CSV and TensorBoard, not instead


def wandb_history(run_file) -> list:
    """The history rows of an offline run, read by wandb's own reader of its .wandb files."""
    read = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(run_file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    records = [json.loads(line) for line in read.stdout.splitlines() if line.startswith("{")]
    return [record["history"]["item"] for record in records if record["type"] == "history"]


def offline(monkeypatch, tmp_path) -> None:
    """W&B without network, writing nothing outside tmp_path (train.py processes started here inherit it)."""
    for name, value in {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_CONFIG_DIR": tmp_path / "config",
        "WANDB_CACHE_DIR": tmp_path / "cache",
        "WANDB_DATA_DIR": tmp_path / "data",
    }.items():
        monkeypatch.setenv(name, str(value))
    # W&B's service of this process, if a test started one: a train.py started here would share it, and its runs
    # stay open in it after it exits
    monkeypatch.delenv("WANDB_SERVICE", raising=False)


def test_wandb_writes_each_run_offline(mnist_dir, tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb", reason="logger=wandb needs wandb: pip install 'mnistlab[trackers]'")
    offline(monkeypatch, tmp_path)
    assert compose(["logger=wandb"]).logger.wandb.offline is True
    metrics = {}
    try:
        for name, epochs in (("a", 2), ("b", 1)):  # two runs in one process, as a sweep's jobs: two W&B runs
            metrics[name] = train_run(
                mnist_dir, tmp_path / name, RUN + ["logger=wandb", f"trainer.max_epochs={epochs}"]
            )
    finally:
        wandb.finish()  # writes out the open run (a process does so when it exits)
    for name, epochs in (("a", 2), ("b", 1)):
        [run_file] = (tmp_path / name).glob("wandb/offline-run-*/run-*.wandb")
        history = wandb_history(run_file)
        val_acc = [row["val/acc"] for row in history if "val/acc" in row]
        assert len(val_acc) == epochs and max(val_acc) == pytest.approx(metrics[name]["val/acc"])
        assert [row["test/acc"] for row in history if "test/acc" in row] == [pytest.approx(metrics[name]["test/acc"])]


@pytest.mark.process
def test_a_killed_run_resumed_logs_into_the_same_mlflow_run(mnist_dir, tmp_path):
    pytest.importorskip("mlflow", reason="logger=mlflow needs mlflow: pip install 'mnistlab[trackers]'")
    from mlflow.tracking import MlflowClient

    run_dir = tmp_path / "run"
    killed_and_resumed(mnist_dir, run_dir, ["logger=mlflow"], cwd=tmp_path)  # the default store, in tmp_path
    client = MlflowClient(f"sqlite:///{tmp_path / 'outputs' / 'mlruns' / 'mlflow.db'}")
    [run] = client.search_runs([client.get_experiment_by_name("mnistlab").experiment_id])
    assert read_tracker_runs(run_dir / "trackers.json") == {"mlflow": run.info.run_id}
    assert run.info.status == "FINISHED" and run.data.tags["run_dir"] == str(run_dir)
    steps = [metric.step for metric in client.get_metric_history(run.info.run_id, "train/loss_step")]
    assert sorted(steps) == list(range(STEPS))  # 8 and 9, logged by both processes, once
    assert [metric.step for metric in client.get_metric_history(run.info.run_id, "val/acc")] == [15, 31]
    final = json.loads((run_dir / "metrics.json").read_text())
    assert run.data.metrics["test/acc"] == pytest.approx(final["test/acc"])


@pytest.mark.process
def test_a_resumed_run_logs_into_the_same_wandb_run(mnist_dir, tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="logger=wandb needs wandb: pip install 'mnistlab[trackers]'")
    offline(monkeypatch, tmp_path)  # both processes are train.py's, each with its own W&B service, as for a user
    run_dir = tmp_path / "run"
    killed_and_resumed(mnist_dir, run_dir, ["logger=wandb"])
    [run_id] = read_tracker_runs(run_dir / "trackers.json").values()  # recorded by the killed process
    folders = sorted((run_dir / "wandb").glob("offline-run-*"))  # offline: one folder per process
    assert len(folders) == 2 and all(folder.name.endswith(f"-{run_id}") for folder in folders)
    [resumed_file] = folders[1].glob("run-*.wandb")
    steps = [row["trainer/global_step"] for row in wandb_history(resumed_file) if "train/loss_step" in row]
    assert steps == list(range(8, STEPS))  # from the checkpoint on; before it, the first folder's
    assert not [
        path for path in run_dir.rglob("*") if path.is_symlink()
    ]  # W&B's links: a folder with any is not resumed


def test_trackers_json_is_read_at_the_boundary(tmp_path):
    path = tmp_path / "trackers.json"
    path.write_text(json.dumps({"mlflow": "0123456789abcdef0123456789abcdef", "wandb": "a1b2c3d4", "other": 1}))
    assert read_tracker_runs(path) == {"mlflow": "0123456789abcdef0123456789abcdef", "wandb": "a1b2c3d4"}
    for bad in ("../../x", "a" * 65, "", 7, "id with spaces"):
        path.write_text(json.dumps({"wandb": bad}))
        with pytest.raises(ReceivedFileError, match="wandb must be a run id"):
            read_tracker_runs(path)
    path.write_text("[]")
    with pytest.raises(ReceivedFileError, match="must map trackers to run ids"):
        read_tracker_runs(path)
