"""What a sweep's summary tells beyond its table: parameter importances, the parallel-coordinates view, and for
studies with several objectives (val/acc against model/parameters) the Pareto front with rerun commands."""

import json
import math

import matplotlib.image
import pytest
import yaml
from helpers import CONF, quick_overrides, run_script

from mnistlab.errors import ConfigError
from mnistlab.sweeps.objectives import Objectives

TWO = ["hydra.sweeper.metric=[val/acc,model/parameters]", "hydra.sweeper.direction=[maximize,minimize]"]

TWO_OBJECTIVES = [
    "--metric",
    "val/acc",
    "--metric",
    "model/parameters",
    "--direction",
    "maximize",
    "--direction",
    "minimize",
]


def sweep_overrides(mnist_dir, sweep_dir) -> list:
    return [o for o in quick_overrides(mnist_dir, sweep_dir) if not o.startswith("paths.")] + [
        f"hydra.sweep.dir={sweep_dir}"
    ]


def mlp_parameters(hidden: int) -> int:
    """784 -> hidden -> 10, weights and biases."""
    return 784 * hidden + hidden + hidden * 10 + 10


def dominated(a: list, b: list) -> bool:
    """(val/acc, parameters) a is beaten by b: b at least as accurate and as small, better in one."""
    return b[0] >= a[0] and b[1] <= a[1] and (b[0] > a[0] or b[1] < a[1])


def importance_table(text: str) -> dict:
    """{parameter: [importance per column]} of summary.md's importance table."""
    start = text.index("Parameter importances (")
    rows = {}
    for line in text[start:].split("\n\n")[1].splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = [float(c) for c in cells[1:]]
    return rows


def picture(path):
    assert path.read_bytes()[:4] == b"\x89PNG"
    return matplotlib.image.imread(path)


@pytest.mark.process
def test_a_tiny_pareto_study_writes_the_front_importances_and_plots(mnist_dir, tmp_path):
    from mnistlab.tasks.summary import main

    sweep = tmp_path / "sweep"
    result = run_script(
        "train.py",
        "-m",
        "hydra/sweeper=mnistlab_optuna",
        "hydra.sweeper.sampler.seed=0",
        "hydra.sweeper.n_trials=4",
        *TWO,
        "model=mlp",
        "model.net.hidden=choice([8],[32])",
        "optimizer.lr=tag(log, interval(1e-4, 1e-1))",
        *sweep_overrides(mnist_dir, sweep),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(maximize val/acc, minimize model/parameters)" in result.stdout
    assert "Pareto front so far: trial(s)" in result.stdout

    records = {n: json.loads((sweep / str(n) / "job.json").read_text()) for n in range(4)}
    points = {}
    for n, record in records.items():
        hidden = int(
            next(o for o in record["overrides"] if o.startswith("model.net.hidden="))[len("model.net.hidden=[") : -1]
        )
        assert record["metrics"]["model/parameters"] == mlp_parameters(hidden)  # the second objective is real
        points[n] = [record["metrics"]["val/acc"], record["metrics"]["model/parameters"]]
    assert len({p[1] for p in points.values()}) == 2  # both sizes were tried: a trade-off to show
    front = {n for n, p in points.items() if not any(dominated(p, q) for q in points.values())}

    best = yaml.safe_load((sweep / "best_params.yaml").read_text())
    assert best["metric"] == ["val/acc", "model/parameters"] and best["direction"] == ["maximize", "minimize"]
    assert "best_trial" not in best and {e["trial"] for e in best["pareto_front"]} == front
    for entry in best["pareto_front"]:
        assert entry["values"] == dict(zip(["val/acc", "model/parameters"], points[entry["trial"]]))
        assert entry["command"].startswith("python train.py ")
        assert f"model.net.hidden={entry['params']['model.net.hidden']}" in entry["command"]
        assert f"optimizer.lr={entry['params']['optimizer.lr']}" in entry["command"]

    text = (sweep / "summary.md").read_text()
    assert "| job | status | model.net.hidden | optimizer.lr | val/acc | model/parameters | test/acc |" in text
    pareto = text[text.index("Pareto front: ") :]
    assert f"Pareto front: {len(front)} of 4 finished jobs" in pareto
    listed = [line.split(":")[0][len("- job ") :] for line in pareto.splitlines() if line.startswith("- job ")]
    assert set(map(int, listed)) == front
    assert all("'model.net.hidden=[" in line for line in pareto.splitlines() if line.startswith("- job "))  # quoted
    importances = importance_table(text)
    assert set(importances) == {"model.net.hidden", "optimizer.lr"}
    for column in zip(*importances.values()):  # val/acc, model/parameters
        assert math.isclose(sum(column), 1.0, abs_tol=0.01)
    assert importances["model.net.hidden"][1] > 0.9  # the size depends on nothing else
    for name in ("summary.png", "importance.png", "parallel_coordinates.png", "pareto.png"):
        assert picture(sweep / name).shape[0] > 200

    (sweep / "pareto.png").unlink()
    main([str(sweep)])  # rebuilt by hand: the objectives come from the sweep's multirun.yaml
    assert (sweep / "summary.md").read_text() == text and (sweep / "pareto.png").exists()


def job(name: str, overrides: dict, metrics: dict, status: str = "ok"):
    from mnistlab.sweeps.jobs import Job

    return Job(name, status, {k: str(v) for k, v in overrides.items()}, metrics, 1.0, None)


def test_importances_find_the_parameter_that_matters(tmp_path):
    from mnistlab.sweeps import importance

    jobs = []
    for i in range(16):
        lr, batch = 10 ** (-4 + 3 * i / 15), [32, 64, 128][i % 3]
        jobs.append(
            job(
                str(i),
                {"optimizer.lr": lr, "data.batch_size": batch, "model": ["mlp", "cnn"][i % 2]},
                {"val/acc": 0.9 - (math.log10(lr) + 2.5) ** 2 / 10 + 0.0001 * (i % 2)},
            )
        )
    jobs.append(job("16", {"optimizer.lr": 1.0, "data.batch_size": 32, "model": "mlp"}, {}, status="failed"))
    params = ["optimizer.lr", "data.batch_size", "model"]
    result = importance.importances(jobs, params, ["val/acc"])
    assert result.n_jobs == 16 and result.ranked()[0] == "optimizer.lr"
    assert result.values["val/acc"]["optimizer.lr"] > 0.8
    assert math.isclose(sum(result.values["val/acc"].values()), 1.0)
    assert importance.importances(jobs, params, ["val/acc"]).values == result.values  # seeded: the same again
    text = importance.markdown(result)
    assert text.splitlines()[4].startswith("| optimizer.lr | 0.")
    assert importance.plot(result, "sweep", tmp_path / "importance.png")
    assert picture(tmp_path / "importance.png").shape[0] > 150

    one = importance.importances(jobs[:1], params, ["val/acc"])
    assert importance.markdown(one) == (
        "Parameter importances: none (need at least 2 finished jobs with val/acc, have 1).\n"
    )
    assert not importance.plot(one, "sweep", tmp_path / "none.png") and not (tmp_path / "none.png").exists()
    same_lr = [job(str(i), {"optimizer.lr": 0.1, "seed": 1}, {"val/acc": 0.5 + i / 10}) for i in range(3)]
    assert "no swept parameter varies among the 3 finished jobs" in importance.markdown(
        importance.importances(same_lr, ["optimizer.lr"], ["val/acc"])
    )
    assert "only optimizer.lr varies among the 16 finished jobs" in importance.markdown(
        importance.importances(jobs, ["optimizer.lr"], ["val/acc"])  # its importance would be 1 by definition
    )
    flat = [
        job(str(i), {"optimizer.lr": i + 1, "data.batch_size": 32 * (1 + i % 2)}, {"val/acc": 1.0, "val/loss": i})
        for i in range(6)
    ]
    both = importance.markdown(
        importance.importances(flat, ["optimizer.lr", "data.batch_size"], ["val/acc", "val/loss"])
    )
    assert "n/a: val/acc is the same in every job" in both
    assert both.splitlines()[4].startswith("| optimizer.lr | n/a | 0.")  # val/loss follows the rate
    assert both.splitlines()[5].startswith("| data.batch_size | n/a | 0.")


def test_pareto_front_by_definition_in_any_directions():
    points = [[0.9, 100], [0.95, 200], [0.9, 150], [0.8, 50], [0.95, 200], [0.7, 60]]
    objectives = Objectives.of(["val/acc", "model/parameters"], ["maximize", "minimize"])
    assert objectives.front(points) == [0, 1, 3, 4]  # ties are all on it; 2 and 5 are beaten
    assert Objectives.of(["a", "b"], "maximize").front(points) == [1, 4]
    assert Objectives.of(["a", "b"], ["minimize", "minimize"]).front(points) == [3, 5]
    assert Objectives.of("val/acc", "maximize").front([[0.5], [0.7], [0.7]]) == [1, 2]


def test_summary_cli_takes_several_metrics_and_drops_stale_plots(tmp_path, capsys):
    from mnistlab.tasks.summary import main

    sweep = tmp_path / "sweep"
    for i, (hidden, acc) in enumerate([(8, 0.90), (32, 0.97), (16, 0.93), (32, 0.95), (16, 0.91)]):
        overrides = ["model=mlp", f"model.net.hidden=[{hidden}]", f"optimizer.lr={0.001 * (i + 1)}"]
        metrics = {"val/acc": acc, "test/acc": acc - 0.01, "model/parameters": mlp_parameters(hidden)}
        (sweep / str(i)).mkdir(parents=True)
        (sweep / str(i) / "job.json").write_text(
            json.dumps({"status": "ok", "seconds": 1.0, "overrides": overrides, "metrics": metrics})
        )
    main([str(sweep), *TWO_OBJECTIVES])
    printed = capsys.readouterr().out
    assert "Pareto front: 3 of 5 finished jobs" in printed  # 8 -> 0.90, 16 -> 0.93, 32 -> 0.97
    assert "| 1 | [32] | 0.002 | 0.9700 | 25450 | 0.9600 |" in printed
    assert "- job 0: `python train.py model=mlp 'model.net.hidden=[8]' optimizer.lr=0.001`" in printed
    assert "summary.png, importance.png, parallel_coordinates.png, pareto.png" in printed
    assert (sweep / "summary.md").read_text() in printed

    main([str(sweep)])  # one objective: no front, and no front's picture left from before
    assert "Pareto front" not in capsys.readouterr().out and not (sweep / "pareto.png").exists()
    assert (sweep / "importance.png").exists() and (sweep / "parallel_coordinates.png").exists()

    bad = run_script("-m", "mnistlab.tasks.summary", str(sweep), *TWO_OBJECTIVES, "--direction", "maximize")
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "error: direction needs one direction per metric: 2 metrics, got ['maximize', 'minimize', 'maximize']"
    )


def test_the_sweeper_refuses_what_it_cannot_optimise():
    import optuna

    from hydra_plugins.mnistlab_sweepers import _objectives

    two = Objectives.of(["val/acc", "model/parameters"], ["maximize", "minimize"])
    _objectives.check(two, None)
    with pytest.raises(ConfigError, match="hydra.sweeper.metric=test/acc would tune on the test set"):
        _objectives.check(Objectives.of(["model/parameters", "test/acc"], "minimize"), None)
    with pytest.raises(ConfigError, match="^pruning needs a single objective, and hydra.sweeper.metric has 2"):
        _objectives.check(two, {"_target_": "optuna.pruners.MedianPruner"})
    with pytest.raises(ConfigError, match="one direction per metric: 2 metrics, got"):
        Objectives.of(["val/acc", "model/parameters"], ["maximize", "minimize", "maximize"])
    with pytest.raises(ConfigError, match="must be maximize or minimize, got 'max'"):
        Objectives.of(["val/acc", "model/parameters"], ["max", "minimize"])
    with pytest.raises(ConfigError, match="names a metric twice"):
        Objectives.of(["val/acc", "val/acc"], "maximize")
    single = optuna.create_study(direction="maximize")
    _objectives.check_study(single, Objectives.of("val/acc", "maximize"), "cnn")
    with pytest.raises(ConfigError, match="study 'cnn' was created to maximize, this sweep asks to maximize, minimize"):
        _objectives.check_study(single, two, "cnn")


def test_cnn_pareto_preset():
    from hydra import compose, initialize_config_dir
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    from hydra_plugins.mnistlab_sweepers._search_space import split
    from mnistlab.settings.schema import register_schemas

    register_schemas()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["hparams_search=cnn_pareto"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    objectives = Objectives.of(sweeper.metric, sweeper.direction)
    assert objectives == Objectives(("val/acc", "model/parameters"), ("maximize", "minimize"))
    assert cfg.model.net._target_.endswith("CNN") and sweeper.pruner is None and sweeper.n_trials == 20
    space, fixed = split([f"{k}={v}" for k, v in sweeper.params.items()], None)
    assert fixed == []
    assert space["model.net.channels"] == CategoricalDistribution(["[8,16]", "[16,32]", "[32,64]"])
    assert space["optimizer.lr"] == FloatDistribution(1e-4, 1e-2, log=True)
    assert isinstance(space["model.net.fc_size"], CategoricalDistribution)
