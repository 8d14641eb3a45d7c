"""A run's report (report.png, report.md), eval.py's confusion matrix and mistakes, and the environment a run
records (env.json, requirements.txt)."""

import csv
import json
import platform
import re
from importlib import metadata

import pytest
import torch
import yaml
from helpers import N_TEST, N_TRAIN, ROOT, TEST_FILES, run_script
from helpers.tool_config import compose_tool, train_run
from PIL import Image

from mnistlab.callbacks.predictions import Predictions
from mnistlab.data.idx import read_idx
from mnistlab.runs.checkpoints import load_classifier, resolve_checkpoint
from mnistlab.tasks.evaluate import evaluate
from mnistlab.tasks.report import main as report_main

OVERRIDES = ["model=mlp", "model.net.hidden=[16]", "seed=0", "optimizer.lr=1e-3", "report=true"]
PNG = b"\x89PNG"


@pytest.fixture(scope="module")
def run(mnist_dir, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    (run_dir / ".hydra").mkdir()
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(OVERRIDES))  # as Hydra writes it
    return run_dir, train_run(mnist_dir, run_dir, OVERRIDES)


def predictions_of(run_dir, mnist_dir) -> Predictions:
    """The tested checkpoint run again on the test files, without the recorder."""
    model, _ = load_classifier(resolve_checkpoint(run_dir))
    images, labels = (read_idx(mnist_dir / "MNIST" / "raw" / name) for name in TEST_FILES)
    with torch.inference_mode():
        logits = model.eval()(images.unsqueeze(1).float() / 255)
    return Predictions(logits, labels.long(), images)


def row_cells(markdown: str, first_cell: str) -> list:
    """The other cells of the first table row that starts with first_cell."""
    line = next(line for line in markdown.splitlines() if line.startswith(f"| {first_cell} |"))
    return [cell.strip() for cell in line.strip("|").split("|")][1:]


def test_report_holds_the_tested_checkpoints_test_results(run, mnist_dir):
    run_dir, metrics = run
    text = (run_dir / "report.md").read_text()
    expected = predictions_of(run_dir, mnist_dir)
    assert 0 < expected.accuracy() < 1  # there are mistakes to show
    assert expected.accuracy() == pytest.approx(metrics["test/acc"], abs=1e-6)
    assert row_cells(text, "accuracy") == [f"{correct / total:.4f}" for _, correct, total in expected.per_class()]
    assert sum(map(int, row_cells(text, "images"))) == N_TEST
    assert row_cells(text, "test/acc") == [f"{metrics['test/acc']:.4f}"]
    true, predicted, count = expected.most_confused()[0]
    confused = text.split("## Most confused pairs")[1]
    assert row_cells(confused, str(true))[:2] == [str(predicted), str(count)]  # the most confused pair first
    assert "python train.py model=mlp 'model.net.hidden=[16]' seed=0 optimizer.lr=1e-3 report=true" in text
    assert "![report](report.png)" in text
    with Image.open(run_dir / "report.png") as picture:
        assert picture.format == "PNG" and picture.size == (1200, 720)


def test_report_names_the_peak_memory_and_its_largest_parts(run):
    run_dir, _ = run
    memory = (run_dir / "report.md").read_text().split("## Memory")[1]
    parts = ("peak resident", "data set", "model", "optimizer state")
    mib = {part: float(row_cells(memory, part)[0]) for part in parts}
    images, labels = (N_TRAIN + N_TEST) * 28 * 28, (N_TRAIN + N_TEST) * 8  # uint8 pixels, int64 labels: one copy
    assert mib["data set"] == pytest.approx((images + labels) / 2**20, abs=0.006)
    model, _ = load_classifier(resolve_checkpoint(run_dir))
    weights = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()]) / 2**20
    assert mib["model"] == pytest.approx(weights, abs=0.006)
    adam = 2 * sum(p.numel() * 4 for p in model.parameters()) / 2**20  # two float32 moments a weight
    assert mib["optimizer state"] == pytest.approx(adam, abs=0.006)
    libraries = float(row_cells(memory, "libraries (torch, Lightning, ...)")[0])
    # the peak is the process's own so far: this run's, or an earlier test's in this pytest process (train.py's
    # fresh process has libraries + parts below it); the libraries were resident when the run began
    assert 100 < libraries <= mib["peak resident"]


def test_eval_writes_the_confusion_matrix_and_the_most_confident_mistakes(run, mnist_dir, tmp_path):
    run_dir, _ = run
    evaluated = evaluate(
        compose_tool("eval", [f"ckpt_path={run_dir}", f"output={tmp_path / 'test.json'}", "threads=1"])
    )
    with open(tmp_path / "test-confusion.csv") as f:
        confusion = torch.tensor([[int(cell) for cell in row[1:]] for row in list(csv.reader(f))[1:]])
    assert confusion.sum() == N_TEST
    assert confusion.trace().item() / N_TEST == pytest.approx(evaluated["test/acc"], abs=1e-6)
    expected = predictions_of(run_dir, mnist_dir)
    assert torch.equal(confusion, expected.confusion())

    with open(tmp_path / "test-mistakes.csv") as f:
        mistakes = list(csv.DictReader(f))
    wrong = (expected.predicted != expected.labels).nonzero().flatten()
    assert len(mistakes) == min(25, len(wrong))
    probabilities = [float(m["probability"]) for m in mistakes]
    assert probabilities == sorted(probabilities, reverse=True)
    assert probabilities[0] == pytest.approx(expected.logits.softmax(1)[wrong].max().item(), abs=1e-4)
    for mistake in mistakes:
        index = int(mistake["index"])
        assert int(mistake["true"]) == expected.labels[index] != int(mistake["predicted"]) == expected.predicted[index]
    assert (tmp_path / "test.png").read_bytes()[:4] == PNG


def test_report_is_remade_from_the_run_directory(run):
    run_dir, _ = run
    written = (run_dir / "report.md").read_text()
    for name in ("report.png", "report.md"):
        (run_dir / name).unlink()
    report_main([str(run_dir)])
    assert "\n## Memory" in written  # train.py's own process: a report remade later has no such section
    assert (run_dir / "report.md").read_text() == written.split("\n## Memory")[0]
    assert (run_dir / "report.png").read_bytes()[:4] == PNG


@pytest.mark.process
def test_report_of_a_folder_that_is_no_run_is_one_line(tmp_path):
    result = run_script("-m", "mnistlab.tasks.report", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr == f"error: {tmp_path} is not a run directory of train.py (no .hydra/config.yaml in it)\n"


def test_report_false_writes_none(mnist_dir, tmp_path):
    train_run(mnist_dir, tmp_path, ["model=softmax", "report=false"])
    assert not (tmp_path / "report.png").exists() and not (tmp_path / "report.md").exists()
    assert (tmp_path / "metrics.json").exists()


def test_env_json_and_requirements_describe_the_run(run):
    run_dir, _ = run
    env = json.loads((run_dir / "env.json").read_text())
    assert {
        "command",
        "started",
        "git_commit",
        "git_dirty",
        "python",
        "torch",
        "lightning",
        "hydra",
        "optuna",
        "numpy",
        "cuda",
        "cudnn",
        "cpu",
        "gpus",
        "torch_threads",
        "hostname",
    } <= set(env)
    assert env["python"] == platform.python_version()
    assert env["torch"] == metadata.version("torch") and env["hydra"] == metadata.version("hydra-core")
    assert env["torch_threads"] == 1  # threads=1 was set before it was written
    if (ROOT / ".git").exists():
        assert re.fullmatch("[0-9a-f]{40}", env["git_commit"]) and isinstance(env["git_dirty"], bool)
    requirements = (run_dir / "requirements.txt").read_text().splitlines()
    assert f"torch=={metadata.version('torch')}" in requirements
    assert f"lightning=={metadata.version('lightning')}" in requirements
    assert all(re.fullmatch(r"\S+==\S+", line) for line in requirements)


def test_a_run_that_fails_still_records_its_environment(mnist_dir, tmp_path):
    with pytest.raises(Exception, match="training diverged"):
        train_run(mnist_dir, tmp_path, ["model=mlp", "model.net.hidden=[16]", "optimizer=sgd", "optimizer.lr=1e20"])
    assert not (tmp_path / "metrics.json").exists()
    assert json.loads((tmp_path / "env.json").read_text())["torch"] == metadata.version("torch")
    assert (tmp_path / "requirements.txt").stat().st_size > 0
