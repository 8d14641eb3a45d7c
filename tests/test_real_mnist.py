"""The life of a model trained on the real MNIST: eval, export and predict on crops of real test digits.

Slow (one epoch of the MLP on 55,000 images) and needs the data: `python -m pytest -m slow`, with
the four MNIST .gz files in $MNISTLAB_REAL_DATA/MNIST/raw/ (default: the checkout's data/, where train.py puts them).
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import ROOT, run_script
from PIL import Image

from mnistlab.data.idx import read_idx
from mnistlab.runs.checkpoints import best_checkpoint, load_classifier

REAL = Path(os.environ.get("MNISTLAB_REAL_DATA", ROOT / "data"))
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (REAL / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz").exists(), reason=f"no MNIST in {REAL}"
    ),
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("real")
    result = run_script(
        "train.py",
        "model=mlp",
        "trainer.max_epochs=1",
        f"data.data_dir={REAL}",
        "data.download=false",
        "+trainer.enable_progress_bar=false",
        f"hydra.run.dir={run_dir}",
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def test_eval_reproduces_the_printed_test_accuracy(run_dir):
    trained = json.loads((run_dir / "metrics.json").read_text())
    result = run_script("eval.py", f"ckpt_path={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    [saved] = (run_dir / "eval").glob("*-test.json")
    assert abs(json.loads(saved.read_text())["test/acc"] - trained["test/acc"]) <= 1e-4
    assert trained["test/acc"] > 0.95


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_exports_match_on_real_test_images(run_dir, fmt):
    result = run_script("export.py", f"ckpt_path={run_dir}", f"format={fmt}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "on the first 256 test images" in result.stdout


def test_predict_on_real_test_digits_of_any_size_and_polarity(run_dir, tmp_path):
    images = read_idx(REAL / "MNIST/raw/t10k-images-idx3-ubyte.gz")[:24].numpy()
    labels = read_idx(REAL / "MNIST/raw/t10k-labels-idx1-ubyte.gz")[:24].numpy()
    model, _ = load_classifier(best_checkpoint(run_dir))
    with torch.no_grad():
        on_raw = model(torch.from_numpy(images[:, None] / 255).float()).argmax(1).numpy()
    sides = [28, 56, 100, 200, 37, 300, 64, 150]
    for index, (image, label) in enumerate(zip(images, labels)):
        picture = Image.fromarray(255 - image if index % 2 else image)  # every other one dark on light
        picture = picture.resize((sides[index % len(sides)],) * 2, Image.Resampling.BILINEAR)
        if index % 3 == 0:
            picture = Image.merge("RGB", [picture, picture.point(lambda v: v * 0.9), picture])
        picture.save(tmp_path / f"{index:02d}-label{label}.{'jpg' if index % 4 == 0 else 'png'}")
    result = run_script("predict.py", f"ckpt_path={run_dir}", f"images={tmp_path}/*")
    assert result.returncode == 0, result.stderr[-3000:]
    predicted = [int(line.split(": ")[1].split()[0]) for line in result.stdout.strip().splitlines()]
    # every digit the model knows from the original 28x28 image, it knows from the picture too
    assert all(p == label for p, label, raw in zip(predicted, labels, on_raw) if raw == label)
    assert np.mean(np.array(predicted) == labels) >= np.mean(on_raw == labels) - 1 / 24
