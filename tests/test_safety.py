"""Checkpoints load weights-only: a file crafted to run code when unpickled is refused, and runs nothing."""

import os
import pickle

import pytest
import torch

from conftest import compose, quick_overrides, run_script
from mnistlab.checkpoints import best_checkpoint, latest_checkpoint, load_checkpoint
from mnistlab.errors import CheckpointError
from mnistlab.train import train
from tool_config import compose_tool


class CreatesMarker:
    """Unpickling this calls os.system: it would create `path`."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return os.system, (f"touch {self.path}",)


@pytest.fixture
def malicious(tmp_path):
    marker = tmp_path / "code-was-run"
    path = tmp_path / "run" / "checkpoints" / "last.ckpt"  # inside a run directory, as a real one
    path.parent.mkdir(parents=True)
    (tmp_path / "run" / ".hydra").mkdir()
    (tmp_path / "run" / ".hydra" / "config.yaml").write_text("seed: 0\n")
    torch.save({"state_dict": {}, "global_step": 1, "hyper_parameters": CreatesMarker(marker)}, path)
    return path, marker


def test_the_crafted_file_really_runs_code_without_weights_only(malicious):
    path, marker = malicious
    torch.load(path, weights_only=False)  # what an unsafe loader would do: the control for the tests below
    assert marker.exists()


def test_malicious_checkpoint_is_refused_in_process(malicious):
    path, marker = malicious
    with pytest.raises(CheckpointError, match=r"refused: .*GLOBAL posix.system.* Nothing in it was run"):
        load_checkpoint(path)
    assert latest_checkpoint(path.parent.parent) is None  # not a usable checkpoint either
    assert not marker.exists()


def test_export_and_predict_refuse_it(malicious):
    from mnistlab.export import export
    from mnistlab.predict import predict

    path, marker = malicious
    for task, config in ((export, compose_tool("export", [f"ckpt_path={path}", "format=onnx"])),
                         (predict, compose_tool("predict", [f"ckpt_path={path}", f"images={path}"]))):
        with pytest.raises(CheckpointError, match="refused"):
            task(config)
    assert not marker.exists()


@pytest.mark.parametrize("command", [["eval.py", "ckpt_path={ckpt}"], ["train.py", "ckpt_path={ckpt}"]])
def test_the_scripts_refuse_it_with_one_line(command, malicious):
    path, marker = malicious
    result = run_script(*[arg.format(ckpt=path) for arg in command])
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path} refused"), result.stderr[-2000:]
    assert not marker.exists()


def test_damaged_checkpoint_gets_a_clear_message(tmp_path):
    path = tmp_path / "half.ckpt"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(path)
    pickle_path = tmp_path / "plain.ckpt"
    torch.save({"weights": torch.zeros(2)}, pickle_path)
    with pytest.raises(CheckpointError, match="not a Lightning checkpoint"):
        load_checkpoint(pickle_path)


def test_best_is_what_train_tested_and_last_is_the_newest(mnist_dir, tmp_path):
    # the "best" by the highest val/loss: the first epoch's, so that it is not also the newest
    metrics = train(compose(quick_overrides(mnist_dir, tmp_path) + ["model=softmax", "trainer.max_epochs=3",
                                                                    "callbacks.checkpoint.monitor=val/loss"]))
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["epoch000-step000016.ckpt", "last.ckpt"]
    assert best_checkpoint(tmp_path).name == "epoch000-step000016.ckpt"
    assert latest_checkpoint(tmp_path).name == "last.ckpt"
    assert load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["global_step"] == metrics["step"] == 48
