"""A precision the CPU cannot train a network in (bf16 and an LSTM without AVX512-BF16) is found by a tiny, cached
probe and refused in one line before training; where the CPU can, nothing changes."""

import os
import platform
import subprocess
import sys

import pytest
import torch
from helpers import ROOT, compose, quick_overrides

from mnistlab.errors import ConfigError
from mnistlab.tasks.train import build
from mnistlab.training import precision

# oneDNN's bf16 LSTM needs AVX512-BF16 or AMX: capped at AVX2, any x86 CPU lacks it, as many AMD EPYCs do
AVX2_ONLY = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
X86_ONEDNN = platform.machine().lower() in ("x86_64", "amd64") and torch.backends.mkldnn.is_available()
LSTM_BF16 = ["model=lstm", "model.net.hidden_size=16", "trainer.precision=bf16-mixed", "trainer.accelerator=cpu"]


def test_the_probe_runs_once_per_layer_and_precision():
    precision.cpu_failure.cache_clear()
    first = precision.cpu_failure(torch.nn.LSTM, "bf16-mixed")
    assert precision.cpu_failure(torch.nn.LSTM, "bf16-mixed") == first
    assert precision.cpu_failure.cache_info().hits == 1 and precision.cpu_failure.cache_info().misses == 1
    assert first is None or "\n" not in first


def test_only_low_precisions_on_the_cpu_are_probed(monkeypatch):
    monkeypatch.setattr(precision, "cpu_failure", lambda layer, name: f"no {layer.__name__} in {name}")
    lstm = torch.nn.Sequential(torch.nn.LSTM(4, 4))
    assert precision.precision_failure(lstm, "32-true", "cpu") is None
    assert precision.precision_failure(lstm, "bf16-mixed", "accelerator") is None  # a GPU: Lightning's checks
    assert precision.precision_failure(lstm, "bf16-mixed", "cpu") == (
        "trainer.precision=bf16-mixed: this CPU cannot run LSTM layers in bfloat16 (no LSTM in bf16-mixed): "
        "use trainer.precision=32-true"
    )


def test_an_unsupported_precision_is_refused_before_the_trainer_is_built(mnist_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "cpu_failure", lambda layer, name: "could not create a primitive descriptor")
    with pytest.raises(ConfigError, match="cannot run LSTM layers in bfloat16 .*: use trainer.precision=32-true"):
        build(compose(quick_overrides(mnist_dir, tmp_path) + LSTM_BF16))


@pytest.mark.skipif(not X86_ONEDNN, reason="ONEDNN_MAX_CPU_ISA caps x86 CPUs running oneDNN only")
@pytest.mark.process
def test_without_avx512_bf16_the_run_stops_with_one_line_and_leaves_no_folder(mnist_dir, tmp_path):
    probe = "import torch, mnistlab.training.precision as p; print(p.cpu_failure(torch.nn.LSTM, 'bf16-mixed'))"
    answer = subprocess.run(
        [sys.executable, "-c", probe], env=AVX2_ONLY, capture_output=True, text=True, timeout=120, check=True
    )
    if answer.stdout.strip() == "None":
        pytest.skip("this torch trains a bf16 LSTM on AVX2 alone")
    assert "could not create a primitive descriptor" in answer.stdout  # the real op, really run
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), f"data.data_dir={mnist_dir}", *LSTM_BF16, "threads=1"],
        cwd=tmp_path,
        env=AVX2_ONLY,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2 and result.stdout == "", result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        "error: trainer.precision=bf16-mixed: this CPU cannot run LSTM layers in bfloat16 (could not create a "
        "primitive descriptor for the LSTM forward propagation primitive): use trainer.precision=32-true"
    ]
    assert list(tmp_path.iterdir()) == []  # no outputs/<date>/<time>/
