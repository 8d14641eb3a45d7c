"""compare.py and the sweep summary: runs that differ only by seed are one row with mean ± std and n."""

import csv
import json
import os
import statistics

import pytest
import yaml
from helpers import run_script

from mnistlab.sweeps.summary import summarize
from mnistlab.tools.compare import compare

MLP_VAL, MLP_TEST = [0.91, 0.95, 0.96], [0.90, 0.93, 0.97]


def write_run(run_dir, overrides, val_curve, test_acc, seconds=None):
    """A finished run as train.py leaves it (a sweep's job also has job.json, with its time)."""
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    metrics = {"val/acc": max(val_curve), "test/acc": test_acc, "step": 100 * len(val_curve)}
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    with open(run_dir / "metrics.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "val/acc"])
        writer.writerows((100 * (n + 1), value) for n, value in enumerate(val_curve))
    if seconds is not None:
        record = {"status": "ok", "seconds": seconds, "overrides": overrides, "metrics": metrics}
        (run_dir / "job.json").write_text(json.dumps(record))


def mean_std(values):
    return f"{statistics.fmean(values):.4f} ± {statistics.stdev(values):.4f}"


@pytest.fixture
def sweep(tmp_path):
    """Three seeds of an MLP and one CNN job, as `train.py -m model=mlp seed=0,1,2` and a CNN job would leave."""
    sweep_dir = tmp_path / "sweep"
    for seed, (val, test) in enumerate(zip(MLP_VAL, MLP_TEST)):
        write_run(
            sweep_dir / str(seed),
            ["model=mlp", f"seed={seed}", "trainer.max_epochs=1"],
            [val - 0.1, val],
            test,
            seconds=10.0 + seed,
        )
    write_run(sweep_dir / "3", ["model=cnn", "seed=0", "trainer.max_epochs=1"], [0.97, 0.99], 0.985, seconds=30.0)
    return sweep_dir


def test_compare_groups_runs_that_differ_only_by_seed(sweep, tmp_path, capsys):
    other = tmp_path / "single"  # a run from another command: no job.json, its time from env.json
    write_run(other, ["model=mlp", "optimizer.lr=0.01", "trainer.max_epochs=1"], [0.8, 0.85, 0.9], 0.89)
    (other / "env.json").write_text(json.dumps({"started": "2026-01-01T12:00:00+00:00"}))
    started = 1767268800.0  # 2026-01-01T12:00:00Z
    os.utime(other / "metrics.json", (started + 42.5, started + 42.5))

    rows = compare([sweep, other], out=tmp_path / "out")
    assert [row["model"] for row in rows] == ["cnn", "mlp", "mlp"]  # best val/acc first
    mlp = rows[1]
    assert mlp["n"] == "3" and mlp["optimizer.lr"] == ""
    assert mlp["val/acc"] == mean_std(MLP_VAL) and mlp["test/acc"] == mean_std(MLP_TEST)
    assert mlp["steps"] == "200 ± 0" and mlp["time (s)"] == "11.0 ± 1.0"
    assert rows[0]["val/acc"] == "0.9900" and rows[0]["n"] == "1"
    assert rows[2]["optimizer.lr"] == "0.01" and rows[2]["time (s)"] == "42.5" and rows[2]["steps"] == "300"
    printed = capsys.readouterr().out
    assert f"| mlp |  | 3 | {mean_std(MLP_VAL)} | {mean_std(MLP_TEST)} |" in printed
    assert "Same in every run: trainer.max_epochs=1" in printed

    with open(tmp_path / "out" / "compare.csv") as f:
        written = list(csv.DictReader(f))
    assert float(written[1]["val/acc mean"]) == pytest.approx(statistics.fmean(MLP_VAL))
    assert float(written[1]["val/acc std"]) == pytest.approx(statistics.stdev(MLP_VAL))
    assert written[0]["val/acc std"] == ""  # one run: no spread
    assert (tmp_path / "out" / "compare.png").read_bytes()[:4] == b"\x89PNG"


def test_sweep_summary_ends_with_mean_and_std_over_seeds(sweep, capsys):
    summarize(sweep)
    printed = capsys.readouterr().out
    table = (sweep / "summary.md").read_text().split("Over seeds")[1]
    assert f"| mlp | 3 | {mean_std(MLP_VAL)} | {mean_std(MLP_TEST)} | 200 ± 0 | 11.0 ± 1.0 | 0, 1, 2 |" in table
    assert "| cnn | 1 | 0.9900 | 0.9850 |" in table
    assert table in printed


def test_sweep_summary_without_seeds_has_no_seed_table(tmp_path, capsys):
    for n, lr in enumerate(["0.1", "0.2"]):
        write_run(tmp_path / str(n), ["model=mlp", f"optimizer.lr={lr}"], [0.9], 0.9, seconds=1.0)
    summarize(tmp_path)
    assert "Over seeds" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda tmp_path: tmp_path / "missing", "{path}: no such folder"),
        (
            lambda tmp_path: tmp_path,
            "{path} is not a run of train.py and holds none (no .hydra/overrides.yaml in it or below it)",
        ),
    ],
    ids=["missing", "not a run"],
)
def test_compare_refuses_what_is_no_run_in_one_line(make, message, tmp_path):
    path = make(tmp_path)
    result = run_script("compare.py", str(path))
    assert result.returncode == 2
    assert result.stderr == f"error: {message.format(path=path)}\n"
