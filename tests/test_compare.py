"""compare.py and the sweep summary: runs that differ only by seed or fold are one row with mean ± std and n;
compare.py A B: the difference in test/acc, its confidence interval and p-value."""

import csv
import json
import math
import os
import statistics

import pytest
import yaml
from helpers import ROOT, run_script

from mnistlab.tasks.compare import against, compare
from mnistlab.tasks.summary import summarize

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


# compare.py A B: is the difference real? The values are Student's sleep data (tests/test_significance.py) as
# accuracies, 0.9 + hours / 100: R's t.test gives the paired and Welch results, scaled by 1 / 100 here.
DRUG_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
DRUG_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def write_side(folder, model, hours, key):
    """One configuration's runs, one per fold (key='data.fold') or per seed (key='seed')."""
    for n, value in enumerate(hours):
        fold = ["data.folds=10"] if key == "data.fold" else []
        write_run(folder / str(n), [f"model={model}", *fold, f"{key}={n}"], [0.9], 0.9 + value / 100, seconds=1.0)
    return folder


def test_runs_that_pair_up_by_fold_get_a_paired_t_test(tmp_path, capsys):
    a = write_side(tmp_path / "mlp", "mlp", DRUG_1, "data.fold")
    b = write_side(tmp_path / "cnn", "cnn", DRUG_2, "data.fold")
    difference, _ = against(a, b)
    assert difference.estimate == pytest.approx(-0.0158)
    assert (difference.low, difference.high) == pytest.approx((-0.024598858, -0.007001142), abs=1e-8)
    assert difference.p == pytest.approx(0.002833, abs=1e-6)
    compare([a, b])
    printed = capsys.readouterr().out
    assert "  A − B = -0.0158, 95% CI -0.0246 to -0.0070, p = 0.0028 (paired t-test over 10 pairs" in printed
    assert "  B is better than A on test/acc, by 0.0158 (95% CI 0.0070 to 0.0246; p = 0.0028 < 0.05)." in printed
    assert f"  A: {os.path.relpath(a)}: {mean_std([0.9 + h / 100 for h in DRUG_1])} (n=10)" in printed


def test_runs_that_do_not_pair_up_get_welchs_test(tmp_path, capsys):
    a = write_side(tmp_path / "mlp", "mlp", DRUG_1, "seed")
    b = write_side(tmp_path / "cnn", "cnn", DRUG_2[:9], "seed")  # nine seeds: the tenth has no partner
    difference, lines = against(a, b)
    assert "Welch's t-test, 10 against 9 runs" in difference.test
    assert lines[-1].startswith("  The data cannot tell A and B apart on test/acc: p = ")
    assert difference.p > 0.05 and difference.low < 0 < difference.high
    b10 = write_side(tmp_path / "cnn10", "cnn", DRUG_2, "seed")
    shifted = write_side(tmp_path / "mlp10", "mlp", [h + 100 for h in DRUG_1], "seed")  # other seeds: 100 to 109
    for n in range(10):
        record = json.loads((shifted / str(n) / "job.json").read_text())
        record["overrides"] = ["model=mlp", f"seed={100 + n}"]
        (shifted / str(n) / "job.json").write_text(json.dumps(record))
    welch, _ = against(shifted, b10)
    assert welch.estimate == pytest.approx(1 - 0.0158)
    assert (welch.high - welch.low) / 2 == pytest.approx((0.2054832 + 3.3654832) / 2 / 100, abs=1e-8)  # R's
    assert welch.p < 1e-6


def write_predictions(run_dir, labels, predicted):
    rows = "".join(f"{label},{guess}\n" for label, guess in zip(labels, predicted))
    (run_dir / "test_predictions.csv").write_text("label,predicted\n" + rows)


def agresti_predictions(tmp_path):
    """Two runs whose test predictions are Agresti's approval table (tests/test_significance.py): 794 images both
    get right, 150 only A, 86 only B, 570 neither."""
    labels = [n % 10 for n in range(1600)]
    wrong = [(label + 1) % 10 for label in labels]
    a_right = [True] * 794 + [True] * 150 + [False] * 86 + [False] * 570
    b_right = [True] * 794 + [False] * 150 + [True] * 86 + [False] * 570
    runs = []
    for name, right in (("a", a_right), ("b", b_right)):
        accuracy = sum(right) / 1600
        write_run(tmp_path / name, ["model=mlp", f"optimizer.lr={name}"], [0.9], accuracy)
        write_predictions(tmp_path / name, labels, [y if ok else w for y, w, ok in zip(labels, wrong, right)])
        runs.append(tmp_path / name)
    return runs


def test_two_single_runs_get_mcnemars_test_on_their_predictions(tmp_path):
    a, b = agresti_predictions(tmp_path)
    difference, lines = against(a, b)
    assert "McNemar's exact test on 1600 test images: 150 right by A only, 86 by B only" in difference.test
    assert (difference.low, difference.high) == pytest.approx((0.021, 0.059), abs=5e-4)  # Agresti's
    tail = sum(math.comb(236, k) for k in range(87)) / 2**236
    assert difference.p == pytest.approx(2 * tail, rel=1e-9)
    assert lines[-1].startswith("  A is better than B on test/acc, by 0.0400 (95% CI 0.0213 to 0.0587; p = 3.7e-05")

    (b / "test_predictions.csv").unlink()
    difference, lines = against(a, b)
    assert difference is None
    assert lines[-1] == (
        f"  no McNemar test: {os.path.relpath(b)} kept no test_predictions.csv (run with report=false, or before it "
        "existed; python -m mnistlab.tasks.report <run> writes it)"
    )


def test_no_test_where_the_runs_do_not_allow_one(sweep, tmp_path):
    _, lines = against(sweep, sweep / "3")
    assert lines[-1] == "  no test: A and B share runs"
    other = write_side(tmp_path / "other", "cnn", DRUG_2, "seed")
    _, lines = against(sweep, other)
    assert lines[-1].startswith("  no test: A holds runs of more than one configuration (they differ in model)")
    _, lines = against(sweep / "3", other)
    assert lines[-1].startswith("  no test: A has 1 finished run(s) and B 10")


def test_a_damaged_predictions_file_is_refused_in_one_line(tmp_path):
    a, b = agresti_predictions(tmp_path)
    (b / "test_predictions.csv").write_text("label,predicted\n1,2\n3,x\n")
    result = run_script("compare.py", str(a), str(b))
    assert result.returncode == 2
    path = os.path.relpath(b / "test_predictions.csv", ROOT)  # as compare.py names runs: from where it runs
    assert result.stderr == f"error: {path}: line 3 is not two class numbers in [0, 999]\n"
