"""The benchmarks run end to end on the synthetic data (smoke tests: no timing is checked)."""

import json
import shutil
import sys

import pytest
from helpers import ROOT, VAL_SIZE, run_script

MODELS = ("softmax", "mlp", "cnn", "lstm")


@pytest.mark.process
def test_benchmark_runs_a_few_steps(mnist_dir, tmp_path):
    result = run_script(
        "benchmarks/throughput.py",
        f"data.data_dir={mnist_dir}",
        "--quick",
        "--json",
        str(tmp_path / "bench.json"),
        f"data.val_size={VAL_SIZE}",
        "threads=1",
    )  # overrides anywhere
    assert result.returncode == 0, result.stderr[-3000:]
    table = result.stdout.split("\n\n")[-1]
    assert table.splitlines()[0].split()[:8] == [
        "model",
        "batch",
        "steps",
        "|",
        "samples/s:",
        "framework",
        "plain",
        "dataloader",
    ]
    assert [line.split()[0] for line in table.splitlines()[1:5]] == list(MODELS)
    assert "start-up, s (median): --help " in table and "first_step " in table

    saved = json.loads((tmp_path / "bench.json").read_text())
    for name in MODELS:
        timings = saved["results"][name]
        assert timings["batch_size"] == 64 and timings["steps"] == 5
        assert all(len(seconds) == 1 and seconds[0] > 0 for seconds in timings["all_seconds"].values())
        assert set(timings["samples_per_s"]) == {"framework", "plain", "dataloader"}
        seconds = {c: s[0] for c, s in timings["all_seconds"].items()}  # one interleaved timing: paired ratios
        assert timings["fw/plain"] == seconds["plain"] / seconds["framework"]
        assert timings["fw/dl"] == seconds["dataloader"] / seconds["framework"]
    start = saved["startup"]
    assert 0 < start["fit_start s"] <= start["train_start s"] <= start["first_step s"]
    assert start["--help s"] > 0 and start["--cfg job s"] > 0


def test_benchmark_rejects_unknown_models():
    result = run_script("benchmarks/throughput.py", "--models", "softmax,resnet")
    assert result.returncode == 2
    assert "unknown model(s) resnet" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.process
def test_benchmark_rejects_a_bad_override_in_one_line():
    result = run_script("benchmarks/throughput.py", "--models", "softmax", "model.net.hidden=[16]")
    assert result.returncode == 2
    assert result.stderr.startswith("error: Could not override 'model.net.hidden'") and "Traceback" not in result.stderr


@pytest.mark.process
def test_layout_benchmark_times_both_layouts_of_each_cnn_preset():
    result = run_script(
        "benchmarks/layout.py", "--presets", "speedrun,cnn_tutorial", "--steps", "2", "--repeats", "1", "threads=1"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split() for line in result.stdout.splitlines()[2:]]
    assert [(row[0], row[1]) for row in rows] == [("speedrun", "64"), ("cnn_tutorial", "50")]
    assert all(float(row[2]) > 0 and float(row[3]) > 0 and row[4].endswith("x") for row in rows)


@pytest.mark.process
def test_benchmark_takes_overrides_of_the_model_it_times(mnist_dir):
    """model.* keys exist only once the model is chosen: the benchmark composes with the model it times."""
    result = run_script(
        "benchmarks/throughput.py",
        "--quick",
        "--no-startup",
        "--models",
        "mlp",
        f"data.data_dir={mnist_dir}",
        f"data.val_size={VAL_SIZE}",
        "threads=1",
        "model.net.hidden=[16,8]",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split("\n\n")[-1].splitlines()[1].split()[0] == "mlp"


@pytest.mark.process
def test_startup_benchmark_times_both_checkouts(mnist_dir, tmp_path):
    """This checkout against a copy of its own train.py and src/: both reach their first training step, and so
    does the plain PyTorch program of the floor."""
    other = tmp_path / "other"
    shutil.copytree(ROOT / "src", other / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    shutil.copytree(ROOT / "conf", other / "conf")
    shutil.copy(ROOT / "train.py", other / "train.py")
    overrides = [f"data.val_size={VAL_SIZE}", "data.download=false", "threads=1", "report=false"]
    result = run_script(
        "benchmarks/startup.py", "--other", str(other), "--data-dir", str(mnist_dir), "--repeats", "1", *overrides
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    rows = {line.split()[0]: line.split() for line in lines[1:4]}
    assert set(rows) == {"this", "other", "plain"} and rows["other"][-1] == str(other)
    plain = rows.pop("plain")
    # the task (its training stubbed, torch not imported) starts before fit does, which starts before the step ends
    assert all(0 < float(row[2]) < float(row[3]) <= float(row[4]) for row in rows.values())
    assert plain[2:4] == ["-", "-"] and float(plain[4]) > 0  # the plain program has no task, no fit: its first step
    for name in ("this", "other"):
        added = float(next(line for line in lines if line.startswith(f"{name}: the framework adds")).split()[4])
        # three figures each rounded to 0.01 s: up to 0.015 s apart
        assert added == pytest.approx(float(rows[name][4]) - float(plain[4]), abs=0.016)


def test_race_runs_the_reference_notebook_as_a_script_without_its_magics(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from speedrun_race import reference_script

    cell = lambda kind, text: {"cell_type": kind, "source": text.splitlines(keepends=True)}  # noqa: E731
    notebook = {
        "cells": [
            cell("code", "from __future__ import print_function\nimport torch\nx = 1"),
            cell("markdown", "# notes"),
            cell("code", "%%timeit\n\nprint(x + 1)"),
            cell("code", "for i in range(30):\n    print(i)"),
        ]
    }
    path = tmp_path / "reference.ipynb"
    path.write_text(json.dumps(notebook))
    script = reference_script(path, seed=7)
    assert script.startswith("import torch\ntorch.manual_seed(7)\n")
    assert "%%timeit" not in script and "__future__" not in script and "range(30)" not in script
    namespace = {}
    exec(script.removeprefix("import torch\ntorch.manual_seed(7)\n"), namespace)  # what is left runs as Python
    assert namespace["x"] == 1


def test_each_process_is_timed_with_its_own_peak_memory(tmp_path):
    # from a small process, as the benchmarks are: Linux counts the parent's resident size at fork into a child's peak
    driver = f"""
import sys
sys.path.insert(0, {str(ROOT / "benchmarks")!r})
from pathlib import Path
from processes import timed
holds = "b = bytearray({{size}} << 20); b[::4096] = b'x' * len(b[::4096]); print('done')"  # touched: resident
_, large_out, large = timed([sys.executable, "-c", holds.format(size=200)], Path("."))
_, small_out, small = timed([sys.executable, "-c", holds.format(size=8)], Path("."))  # after: its own peak
assert small_out == large_out == "done\\n"
print(large, small)
try:
    timed([sys.executable, "-c", "raise SystemExit(3)"], Path("."))
except SystemExit as refusal:
    print("refused" if "failed" in str(refusal) else "other")
"""
    result = run_script("-c", driver, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    sizes, refusal = result.stdout.splitlines()
    large, small = map(float, sizes.split())
    assert 150 < large - small < 250 and small < 100
    assert refusal == "refused"


@pytest.mark.slow  # six processes, about a minute
def test_epoch_slope_times_whole_processes_of_each_side(mnist_dir, tmp_path):
    out = tmp_path / "slope.json"
    overrides = [f"data.data_dir={mnist_dir}", f"data.val_size={VAL_SIZE}", "threads=1", "data.batch_size=100"]
    args = ["--models", "softmax", "--epochs", "1", "2", "--repeats", "1", "--before", "fast_loop=false"]
    result = run_script("benchmarks/epoch_slope.py", *args, "--json", str(out), *overrides)
    assert result.returncode == 0, result.stderr[-3000:]
    [row] = json.loads(out.read_text()).values()
    assert row["framework/raw"] == row["raw s/epoch"] / row["framework s/epoch"]
    assert row["before/raw"] == row["raw s/epoch"] / row["before s/epoch"]
    assert row["framework/raw inside"] == row["raw inside s/epoch"] / row["framework inside s/epoch"]
    for side in ("framework", "raw", "before"):
        assert 0 < row[f"{side} inside s/epoch"] < row[f"{side} s/epoch"] + 5  # the second epoch of each 2-epoch run
    for side in ("framework", "raw", "before"):
        assert row[f"{side} peak MiB"] > 100  # each process's own, torch loaded
    assert result.stdout.splitlines()[0] == "before: the framework with fast_loop=false"
    assert "softmax" in result.stdout.splitlines()[2]


@pytest.mark.process
@pytest.mark.parametrize(
    "chosen, schedule, validations",
    [
        ("model=mlp", [], 3),  # every epoch, the default
        ("experiment=mlp_best", ["trainer.check_val_every_n_epoch=2"], 2),  # after epochs 2 and 3 (the last)
        # 500 training images at batch 100: 15 steps; validated after steps 4, 8, 12 and 15 (the last)
        ("experiment=mlp_tutorial", ["trainer.val_check_interval=4", "data.batch_size=100", "optimizer.lr=0.3"], 4),
    ],
)
def test_the_plain_loop_of_the_slope_learns_and_validates_when_the_framework_does(
    mnist_dir, chosen, schedule, validations
):
    """The default MLP; mlp_best: augmented batches and EMA weights; mlp_tutorial: L2, SGD with staircase decay,
    EMA, validation every N steps. Validated as check_val_every_n_epoch or val_check_interval and mnistlab's
    ValidateAtStop (the last step) have the framework do."""
    result = run_script(
        "benchmarks/epoch_slope.py",
        "--raw",
        "3",
        chosen,
        f"data.data_dir={mnist_dir}",
        f"data.val_size={VAL_SIZE}",
        "threads=1",
        "optimizer.lr=3e-3",
        *schedule,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["validations"] == validations
    assert len(outcome["epoch_seconds"]) == 3 and all(seconds > 0 for seconds in outcome["epoch_seconds"])
    assert outcome["val/acc"] > 0.5 and outcome["test/acc"] > 0.5  # ten classes: chance is 0.1


def test_epoch_slope_reads_the_epochs_each_process_timed(monkeypatch):
    """train.py's epoch lines (mnistlab's ProgressBar writes them when its output is not a terminal) and the plain
    loop's JSON: a change to either's format fails here, not only in the slow run above."""
    from types import SimpleNamespace

    from mnistlab.callbacks.progress import ProgressBar

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from epoch_slope import epochs_inside

    trainer = SimpleNamespace(
        max_epochs=2, max_steps=-1, current_epoch=1, global_step=20, progress_bar_metrics={"val/acc": 0.91}
    )
    lines = [ProgressBar.epoch_line(trainer, seconds) for seconds in (12.34, 0.4)]
    output = "\n".join(["Epoch 0:  50%|#####  | 10/20", lines[0], "val/acc 0.91  (3.0 s)", lines[1], "run saved in x"])
    assert epochs_inside("framework", output) == [12.34, 0.4]
    assert epochs_inside("raw", 'noise\n{"validations": 2, "epoch_seconds": [1.5, 2.25]}\n') == [1.5, 2.25]


def test_epoch_slope_refuses_an_unknown_preset():
    result = run_script("benchmarks/epoch_slope.py", "--models", "", "--presets", "speedrun,fastest")
    assert result.returncode == 1 and result.stderr.strip().startswith("error: --presets: unknown fastest (of ")
