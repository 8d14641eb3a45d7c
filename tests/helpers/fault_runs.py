"""Short deterministic CPU runs of train.py with faults injected (helpers.fault_hooks), and the comparison with a run
never stopped: the same final weights (last.ckpt's state_dict, tensor for tensor), the same metrics.csv and
metrics.json, value for value (as tests/test_resume.py compares them)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from helpers import ROOT, quick_overrides
from helpers.fault_hooks import FAULTS

# step checkpoints every 4 steps, the newest 2 kept: a kill loses at most the steps since the last one
STEP_CHECKPOINTS = ["callbacks.recent.every_n_train_steps=4", "callbacks.recent.save_top_k=2"]
STEPS_PER_EPOCH = 16  # (600 - VAL_SIZE) images in batches of 32
MODELS = {  # dropout, EMA and augmentation: random state and extra weights that must survive a resume
    "mlp": (
        ["model=mlp", "model.net.hidden=[32]", "model.net.dropout=0.3", "ema.enabled=true", "data.augment.shift=2"],
        3,
    ),
    "lstm": (["model=lstm", "model.net.hidden_size=16", "model.net.dropout=0.2"], 2),
}


def total_steps(model: str) -> int:
    return MODELS[model][1] * STEPS_PER_EPOCH


def overrides(mnist_dir: Path, run_dir: Path, model: str) -> list:
    settings, epochs = MODELS[model]
    quick = [o for o in quick_overrides(mnist_dir, run_dir) if not o.startswith("paths.")]
    return quick + settings + STEP_CHECKPOINTS + ["seed=0", f"trainer.max_epochs={epochs}", f"hydra.run.dir={run_dir}"]


def train(*args: str, **faults: str) -> subprocess.CompletedProcess:
    """train.py with `args`, through helpers.fault_hooks with `faults` (KILL_AT_STEP="12", ...) set."""
    env = {name: value for name, value in os.environ.items() if name not in FAULTS}
    env.update({"PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")]), **faults})
    command = [sys.executable, "-m", "helpers.fault_hooks", "train.py", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def finished(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stderr[-3000:]
    return result


_uninterrupted = {}


def uninterrupted(model: str, mnist_dir: Path, tmp_path_factory) -> Path:
    """The run never stopped, made once per test session and model."""
    if model not in _uninterrupted:
        run_dir = tmp_path_factory.mktemp(f"uninterrupted-{model}")
        finished(train(*overrides(mnist_dir, run_dir, model)))
        _uninterrupted[model] = run_dir
    return _uninterrupted[model]


def final_weights(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def assert_same_run(resumed: Path, reference: Path) -> None:
    assert (resumed / "metrics.csv").read_text() == (reference / "metrics.csv").read_text()
    assert json.loads((resumed / "metrics.json").read_text()) == json.loads((reference / "metrics.json").read_text())
    weights, expected = final_weights(resumed), final_weights(reference)
    assert weights.keys() == expected.keys()
    differing = [name for name in expected if not torch.equal(weights[name], expected[name])]
    assert not differing, f"final weights differ: {differing}"


def temporaries(run_dir: Path) -> set:
    """Files a save was writing when it stopped (ValidatedCheckpointIO's temporary names)."""
    return {path.name for path in (run_dir / "checkpoints").glob(".*.ckpt.*.tmp")}


def checkpoint_step(path: Path) -> int:
    return torch.load(path, weights_only=True)["global_step"]
