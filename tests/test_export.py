"""export.py: each architecture to TorchScript and ONNX, matching the checkpoint, runnable without mnistlab."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers.tool_config import compose_tool, train_run

from mnistlab.errors import ConfigError
from mnistlab.runs.checkpoints import load_classifier
from mnistlab.settings.schema import validate
from mnistlab.tasks.export import export

ARCHITECTURES = {
    "softmax": ["model=softmax"],
    "mlp": ["model=mlp", "model.net.hidden=[32]", "ema.enabled=true", "ema.decay=0.5"],  # exports the EMA weights
    "cnn": ["model=cnn", "model.net.channels=[4,8]", "model.net.fc_size=32", "model.net.batch_norm=true"],
    "lstm": ["model=lstm", "model.net.hidden_size=16", "model.net.input_proj=8", "model.net.bidirectional=true"],
}

# Run in a fresh interpreter where importing mnistlab fails: the files must stand alone.
WITHOUT_MNISTLAB = """
import json, sys
sys.modules["mnistlab"] = None  # any import of the project now raises ImportError
import numpy as np, onnxruntime, torch
inputs = np.load(sys.argv[1])
report = {}
for name, path in json.loads(sys.argv[2]).items():
    for n in (1, 7):
        images = inputs[:n]
        if path.endswith(".onnx"):
            session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
            logits = session.run(None, {session.get_inputs()[0].name: images})[0]
        else:
            logits = torch.jit.load(path)(torch.from_numpy(images)).detach().numpy()
        report[f"{name}/{n}"] = logits.tolist()
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def exports(mnist_dir, tmp_path_factory):
    found = {}
    for arch, overrides in ARCHITECTURES.items():
        run_dir = tmp_path_factory.mktemp(arch)
        train_run(mnist_dir, run_dir, overrides + ["+trainer.limit_train_batches=3", "seed=0"])
        for fmt in ("torchscript", "onnx"):
            result = export(compose_tool("export", [f"ckpt_path={run_dir}", f"format={fmt}", "check_images=64"]))
            found[f"{arch}-{fmt}"] = (run_dir, result)
    return found


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_exports_match_the_checkpoint(arch, exports):
    for fmt, suffix in (("torchscript", ".pt"), ("onnx", ".onnx")):
        run_dir, result = exports[f"{arch}-{fmt}"]
        assert result["max_abs_diff"] <= 1e-4
        assert result["output"].endswith(suffix) and (run_dir / "export").is_dir()


def test_exports_run_without_the_project_and_take_any_batch(exports, tmp_path):
    images = torch.rand(7, 1, 28, 28)
    np.save(tmp_path / "images.npy", images.numpy())
    files = {name: result["output"] for name, (_, result) in exports.items()}
    ran = subprocess.run(
        [sys.executable, "-c", WITHOUT_MNISTLAB, str(tmp_path / "images.npy"), json.dumps(files)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    report = json.loads(ran.stdout)
    for name, (run_dir, _) in exports.items():
        model, _ = load_classifier(next((run_dir / "checkpoints").glob("*.ckpt")))
        with torch.no_grad():
            expected = model(images).numpy()
        for n in (1, 7):
            assert np.abs(np.array(report[f"{name}/{n}"]) - expected[:n]).max() <= 1e-4, name


@pytest.mark.filterwarnings("ignore:.*torch.jit.load.*:FutureWarning")
def test_the_ema_weights_are_exported(exports):
    run_dir, result = exports["mlp-torchscript"]
    model, _ = load_classifier(next((run_dir / "checkpoints").glob("*.ckpt")))
    exported = torch.jit.load(result["output"])
    images = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(exported(images), model.ema.net(images), atol=1e-5)
        assert not torch.allclose(exported(images), model.net(images), atol=1e-3)  # not the raw weights


def test_export_settings_are_checked():
    with pytest.raises(ConfigError, match="format must be torchscript or onnx"):
        validate(compose_tool("export", ["ckpt_path=x", "format=savedmodel"]))
