"""logger=mlflow and logger=wandb: a short run's metrics read back through each tracker's own reader, offline."""

import json
import subprocess
import sys

import pytest
from helpers import compose
from helpers.tool_config import train_run

RUN = ["model=softmax", "trainer.max_epochs=2"]


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


def test_wandb_writes_each_run_offline(mnist_dir, tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb", reason="logger=wandb needs wandb: pip install 'mnistlab[trackers]'")
    for name, value in {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_CONFIG_DIR": tmp_path / "config",
        "WANDB_CACHE_DIR": tmp_path / "cache",
        "WANDB_DATA_DIR": tmp_path / "data",
    }.items():
        monkeypatch.setenv(name, str(value))  # no network, nothing written outside tmp_path
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
