"""eval.py: a checkpoint's metrics exactly as train.py reported them, and watch mode beside a training."""

import json
import os
import subprocess
import sys
import time

import pytest
from helpers import ROOT, quick_overrides, run_script
from helpers.tool_config import compose_tool, train_run

from mnistlab.errors import ConfigError, UserError
from mnistlab.settings.schema import validate
from mnistlab.tasks.evaluate import evaluate

# not the defaults (model=cnn with 32/64 channels): eval must rebuild this from the run's own config
SMALL_CNN_WITH_EMA = [
    "model=cnn",
    "model.net.channels=[4,8]",
    "model.net.fc_size=32",
    "model.net.kernel_size=3",
    "ema.enabled=true",
    "ema.decay=0.9",
    "optimizer.lr=3e-3",
    "seed=0",
]


@pytest.fixture(scope="module")
def trained(mnist_dir, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    return run_dir, train_run(mnist_dir, run_dir, SMALL_CNN_WITH_EMA + ["trainer.max_epochs=2"])


def test_eval_reproduces_the_test_accuracy_train_printed(trained, in_process):
    run_dir, trained_metrics = trained
    assert 0.1 < trained_metrics["test/acc"] < 1.0  # not a trivial 0 or 1
    result = in_process("eval.py", f"ckpt_path={run_dir}", "threads=1")  # no model overrides repeated
    assert result.returncode == 0, result.stderr[-3000:]
    [saved] = (run_dir / "eval").glob("*-test.json")
    evaluated = json.loads(saved.read_text())
    assert abs(evaluated["test/acc"] - trained_metrics["test/acc"]) <= 1e-4
    assert abs(evaluated["test/loss"] - trained_metrics["test/loss"]) <= 1e-6
    assert f"test/acc {trained_metrics['test/acc']:.4f}" in result.stdout
    assert result.stderr.strip() == ""  # nothing but the metrics: no Lightning chatter


def test_eval_on_the_validation_set_gives_the_best_checkpoints_score(trained):
    run_dir, trained_metrics = trained
    output = run_dir / "val.json"
    metrics = evaluate(compose_tool("eval", [f"ckpt_path={run_dir}", "split=val", f"output={output}"]))
    assert abs(metrics["val/acc"] - trained_metrics["val/acc"]) <= 1e-4  # the best checkpoint's val/acc
    assert json.loads(output.read_text())["val/acc"] == metrics["val/acc"]


def test_a_run_of_an_older_mnistlab_still_evaluates(trained, tmp_path):
    """Runs saved before the network moved to model.net: their config's model was the network's own (training keys
    beside its arguments), their data config had no _target_, their checkpoints' hyperparameters a `model` entry."""
    import shutil

    import torch
    from omegaconf import OmegaConf

    from mnistlab.runs.run_dir import saved_config
    from mnistlab.settings.targets import check_targets

    run_dir, trained_metrics = trained
    old = shutil.copytree(run_dir, tmp_path / "old", ignore=shutil.ignore_patterns("eval"))
    training_keys = ("l2", "label_smoothing", "init", "init_std", "init_bias")
    cfg = OmegaConf.load(old / ".hydra" / "config.yaml")
    cfg.model = {**cfg.model.net, **{key: cfg.model[key] for key in training_keys}}
    del cfg.data["_target_"], cfg.data["seed"]
    OmegaConf.save(cfg, old / ".hydra" / "config.yaml")
    for path in (old / "checkpoints").glob("*.ckpt"):
        checkpoint = torch.load(path, weights_only=True)
        hparams = checkpoint["hyper_parameters"]
        model = {**hparams.pop("net"), **{key: hparams.pop(key) for key in training_keys}}
        checkpoint["hyper_parameters"] = {"model": model, **hparams}
        torch.save(checkpoint, path)

    upgraded = saved_config(old)  # what resume=, eval.py and export.py read
    assert upgraded["model"]["net"]["_target_"] == "mnistlab.models.cnn.CNN"
    assert upgraded["model"]["net"]["channels"] == [4, 8]
    assert upgraded["data"]["_target_"] == "mnistlab.data.mnist.MNISTDataModule"
    check_targets(upgraded["model"], source="old", run_config=True)
    metrics = evaluate(compose_tool("eval", [f"ckpt_path={old}", f"output={tmp_path / 'metrics.json'}"]))
    assert abs(metrics["test/acc"] - trained_metrics["test/acc"]) <= 1e-4


def test_eval_settings_are_checked():
    with pytest.raises(ConfigError, match="split must be test or val"):
        validate(compose_tool("eval", ["ckpt_path=x", "split=train"]))
    with pytest.raises(ConfigError, match="watch.interval must be positive"):
        validate(compose_tool("eval", ["ckpt_path=x", "watch.interval=0"]))


def test_watch_needs_a_run_directory(trained, tmp_path):
    run_dir, _ = trained
    checkpoint = next((run_dir / "checkpoints").glob("epoch*.ckpt"))
    with pytest.raises(UserError, match="watch=true needs ckpt_path=<run directory>"):
        evaluate(compose_tool("eval", [f"ckpt_path={checkpoint}", "watch.enabled=true"]))


@pytest.mark.process
def test_watch_reports_each_new_checkpoint_once_and_stops_when_training_ends(mnist_dir, tmp_path):
    run_dir = tmp_path / "run"
    quick = [o for o in quick_overrides(mnist_dir, run_dir) if not o.startswith("paths.")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")])}
    training = subprocess.Popen(
        [
            sys.executable,
            "train.py",
            *quick,
            "model=mlp",
            "model.net.hidden=[16]",
            "trainer.max_epochs=3",
            "callbacks.recent.every_n_train_steps=4",
            "callbacks.recent.save_top_k=-1",
            f"hydra.run.dir={run_dir}",
            "+callbacks.slow._target_=helpers.helper_callbacks.SleepEachStep",
            "+callbacks.slow.seconds=0.15",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    while not (run_dir / ".hydra" / "config.yaml").exists():  # Hydra made the run directory
        assert training.poll() is None, training.stderr.read()[-3000:]
        time.sleep(0.05)
    watcher = subprocess.Popen(
        [
            sys.executable,
            "eval.py",
            f"ckpt_path={run_dir}",
            "watch=true",
            "watch.interval=0.2",
            "watch.timeout=240",
            "threads=1",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    steps, reported_while_training = [], 0
    for line in watcher.stdout:
        if line.startswith("step "):
            steps.append(int(line.split(":")[0].split()[1]))
            reported_while_training += training.poll() is None
        last = line
    assert watcher.wait(timeout=60) == 0, watcher.stderr.read()[-3000:]
    assert training.wait(timeout=60) == 0, training.stderr.read()[-3000:]
    assert last.strip() == "training finished: watch ends"
    assert reported_while_training >= 1
    assert steps == sorted(set(steps))  # each checkpoint once, in order
    assert set(steps) == set(range(4, 49, 4))  # every step checkpoint (the best and last are among them)
    assert len((run_dir / "eval" / "watch-val.jsonl").read_text().splitlines()) == len(steps)


@pytest.mark.parametrize("script", ["eval.py", "export.py", "predict.py"])
def test_tools_start_without_torch(script):
    result = run_script("-X", "importtime", script, "--help")
    assert result.returncode == 0, result.stderr
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "hydra" in imported and "torch" not in imported and "lightning" not in imported
