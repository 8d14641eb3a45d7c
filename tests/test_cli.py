"""train.py as a user runs it: start-up, multirun, and one-line errors for bad input."""

import pytest
from helpers import CONF, compose, quick_overrides, run_script

from mnistlab.errors import ConfigError
from mnistlab.settings.schema import validate


def test_help_and_cfg_do_not_import_torch():
    for flag in ("--help", "--cfg=job"):
        result = run_script("-X", "importtime", "train.py", flag)
        assert result.returncode == 0, result.stderr
        imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
        assert "hydra" in imported and "torch" not in imported and "lightning" not in imported


GROUPS = sorted(d.name for d in CONF.iterdir() if d.is_dir() and d.name != "hydra")


def test_help_lists_each_config_group_with_its_options_but_not_the_schemas():
    result = run_script("train.py", "--help")
    assert result.returncode == 0, result.stderr
    listed = dict(
        line.split(": ", 1)
        for line in result.stdout.split("== Config ==")[0].splitlines()
        if ": " in line and "/" not in line.split(": ")[0] and " " not in line.split(": ")[0]
    )
    expected = {g: ", ".join(sorted(f.stem for f in (CONF / g).glob("*.yaml"))) for g in GROUPS}
    assert listed == expected
    assert "schema/" not in result.stdout
    classifier = "model:\n  _target_: mnistlab.training.classifier.Classifier\n  _recursive_: false\n  net:\n"
    assert f"{classifier}    _target_: mnistlab.models.cnn.CNN" in result.stdout


@pytest.mark.parametrize("group,option", [(g, f.stem) for g in GROUPS for f in sorted((CONF / g).glob("*.yaml"))])
def test_every_config_file_composes(group, option, tmp_path):
    cfg = compose([f"{group}={option}", f"paths.output_dir={tmp_path}"])
    validate(cfg)


BAD_INPUT = {
    "model=foo": "Available options in 'model': cnn, lstm, mlp, softmax",
    "optimizer.lr=abc": "optimizer.lr",
    "data.batch_size=0": "data.batch_size must be in [1, 60000]",
    "optimizer.lr=-0.1": "optimizer.lr must be positive",
    "model.net.dropout=1.0": "model.net.dropout must be in [0, 1)",
    "model.net.dropout=-0.2": "model.net.dropout must be in [0, 1)",
}


@pytest.mark.parametrize("override", list(BAD_INPUT))
def test_bad_input_gives_one_line_and_exit_2(override, tmp_path):
    result = run_script("train.py", override, f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and BAD_INPUT[override] in lines[0], result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_range_checks_live_in_the_schema(tmp_path):
    cfg = compose([f"paths.output_dir={tmp_path}", "model=lstm", "model.net.cell=rnn"])
    with pytest.raises(ConfigError, match="model.net.cell must be lstm or gru"):
        validate(cfg)


@pytest.mark.process
def test_missing_data_message(tmp_path):
    result = run_script(
        "train.py", f"data.data_dir={tmp_path}/nothing", "data.download=false", f"hydra.run.dir={tmp_path}/run"
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "MNIST/raw/" in result.stderr and "data.data_dir=" in result.stderr


@pytest.mark.process
def test_two_job_multirun(mnist_dir, tmp_path):
    overrides = [o for o in quick_overrides(mnist_dir, tmp_path) if not o.startswith("paths.")]
    result = run_script("train.py", "-m", "model=softmax,mlp", *overrides, f"hydra.sweep.dir={tmp_path}/sweep")
    assert result.returncode == 0, result.stderr[-3000:]
    for job in ("0", "1"):
        job_dir = tmp_path / "sweep" / job
        assert (job_dir / ".hydra" / "config.yaml").exists()
        assert (job_dir / "metrics.csv").exists() and (job_dir / "checkpoints" / "last.ckpt").exists()
    assert result.stdout.count("\ntest/acc ") == 2  # each run's own summary line
