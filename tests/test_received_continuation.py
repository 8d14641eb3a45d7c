"""Crafted sweep and run folders against this round's readers: continuing a grid sweep in an old folder, Optuna
trial continuation, a saved config's MLflow store. Each input either works as data or is one `error:` line and
exit code 2, and nothing outside the run or sweep folder is written."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import ROOT, quick_overrides

from mnistlab.errors import ReceivedFileError

GRID = ["model=mlp", "model.net.hidden=[16]", "optimizer.lr=1e-3"]


def train(args, cwd=ROOT, env=None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env or {})}
    command = [sys.executable, str(ROOT / "train.py"), *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def sweep_args(mnist_dir, sweep_dir) -> list:
    quick = [o for o in quick_overrides(mnist_dir, sweep_dir) if not o.startswith("paths.")]
    return ["-m", *GRID, *quick, f"hydra.sweep.dir={sweep_dir}"]


def job_overrides(mnist_dir, sweep_dir) -> list:
    """The overrides a job of sweep_args records (Hydra's spelling), so that a crafted record matches it."""
    quick = [o for o in quick_overrides(mnist_dir, sweep_dir) if not o.startswith("paths.")]
    return ["optimizer.lr=0.001", *quick, "model=mlp", "model.net.hidden=[16]"]


def refused_in_one_line(result) -> bool:
    lines = result.stderr.strip().splitlines()
    return result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:")


def test_a_job_folder_named_as_an_interpolation_stays_in_the_sweep(mnist_dir, tmp_path):
    sweep, outside = tmp_path / "sweep", tmp_path / "outside"
    outside.mkdir()
    job = sweep / "${oc.env:ATTACK_TARGET}"
    job.mkdir(parents=True)
    record = {"status": "failed", "seconds": 1, "overrides": job_overrides(mnist_dir, sweep)}
    (job / "job.json").write_text(json.dumps(record))
    result = train(sweep_args(mnist_dir, sweep), env={"ATTACK_TARGET": str(outside)})
    assert list(outside.iterdir()) == [], f"the job wrote outside the sweep: {sorted(outside.iterdir())}"
    assert result.returncode == 0 or refused_in_one_line(result), result.stderr[-2000:]


def test_a_sweep_folder_with_links_but_no_jobs_is_refused(mnist_dir, tmp_path):
    sweep, precious, outside = tmp_path / "sweep", tmp_path / "precious.txt", tmp_path / "outside"
    sweep.mkdir()
    outside.mkdir()
    precious.write_text("keep me")
    (sweep / "multirun.yaml").symlink_to(precious)
    (sweep / "0").symlink_to(outside)
    result = train(sweep_args(mnist_dir, sweep))
    assert precious.read_text() == "keep me", "multirun.yaml was written through its link"
    assert list(outside.iterdir()) == [], "job 0 was written through its link"
    assert refused_in_one_line(result), result.stderr[-2000:]


def crafted_job(sweep: Path, name: str, record) -> None:
    (sweep / name).mkdir(parents=True)
    text = record if isinstance(record, str) else json.dumps(record)
    (sweep / name / "job.json").write_text(text)


@pytest.mark.parametrize(
    "record",
    [
        "[1, 2]",
        {"status": "ok", "overrides": "optimizer.lr=1"},
        {"status": "weird", "overrides": []},
        {"status": "ok", "overrides": ["optimizer.lr='"]},
        {"status": "ok", "overrides": [{"a": 1}]},
        "{" * 100_000,
    ],
    ids=["list", "overrides-string", "status", "unparsable-override", "override-mapping", "deep"],
)
def test_malformed_job_records_are_one_line(tmp_path, record):
    from hydra.errors import OverrideParseException

    from mnistlab.sweeps.continuation import plan

    crafted_job(tmp_path, "0", record)
    # Hydra's parse error is also one line (cli.py), though it does not name the job.json
    with pytest.raises((ReceivedFileError, OverrideParseException)):
        plan(tmp_path, [["optimizer.lr=0.001"]])


def test_odd_records_plan_only_folders_found_in_the_sweep(tmp_path):
    from mnistlab.sweeps.continuation import RERUN, SKIP, plan

    overrides = ["optimizer.lr=0.001", "hydra.sweep.subdir=/etc", "resume=/etc", "hydra.run.dir=/"]
    crafted_job(tmp_path, "a/b", {"status": "unfinished", "overrides": overrides})
    crafted_job(tmp_path, "c", {"status": "ok", "overrides": ["optimizer.lr=0.003", "ckpt_path=/x.ckpt"]})
    planned = plan(tmp_path, [["optimizer.lr=1e-3"], ["optimizer.lr=3e-3"], ["optimizer.lr=1e-2"]])
    assert [(job.folder, job.action) for job in planned] == [("a/b", RERUN), ("c", SKIP), ("0", "new")]


@pytest.mark.parametrize("kind", ["attempts-link", "job-link", "hard-linked-checkpoint"])
def test_links_in_a_continued_sweep_are_refused(tmp_path, kind):
    from mnistlab.sweeps.continuation import plan

    sweep, outside = tmp_path / "sweep", tmp_path / "outside"
    outside.mkdir()
    crafted_job(sweep, "0", {"status": "failed", "overrides": ["optimizer.lr=0.001"]})
    if kind == "attempts-link":
        (sweep / ".attempts").symlink_to(outside)
    elif kind == "job-link":
        (sweep / "1").symlink_to(outside)
    else:
        (outside / "x.ckpt").write_bytes(b"x")
        (sweep / "0" / "checkpoints").mkdir()
        os.link(outside / "x.ckpt", sweep / "0" / "checkpoints" / "last.ckpt")
    with pytest.raises(ReceivedFileError):
        plan(sweep, [["optimizer.lr=0.001"]])


@pytest.mark.parametrize("retry_of", [-1, True, "0", 1.0, None, 10**30, [0]])
def test_odd_retry_of_moves_nothing(tmp_path, retry_of):
    from hydra_plugins.mnistlab_sweepers.optuna_sweeper import continued

    crafted_job(tmp_path, "0", {"status": "unfinished", "overrides": []})
    trial = SimpleNamespace(number=5, user_attrs={"retry_of": retry_of})
    assert continued(trial, tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0"]


@pytest.mark.parametrize("pid", ["0x10", "-1", "1 ", "", "abc"])
def test_odd_sweep_pids_are_not_signalled(pid):
    from hydra_plugins.mnistlab_sweepers.optuna_sweeper import sweep_is_gone

    trial = SimpleNamespace(user_attrs={"sweep": f"{socket.gethostname()}:{pid}"})
    assert sweep_is_gone(trial) is False


@pytest.mark.parametrize("pid", ["\u00b2", "9" * 30])
def test_a_sweep_pid_that_is_no_number_is_no_traceback(pid):
    from hydra_plugins.mnistlab_sweepers.optuna_sweeper import sweep_is_gone

    trial = SimpleNamespace(user_attrs={"sweep": f"{socket.gethostname()}:{pid}"})
    assert sweep_is_gone(trial) is False


def mlflow_config(uri: str) -> dict:
    logger = {"_target_": "mnistlab.callbacks.trackers.MLFlowLogger", "save_dir": "RUN", "tracking_uri": uri}
    return {"trainer": {}, "callbacks": {}, "logger": {"mlflow": logger}}


@pytest.mark.parametrize(
    "uri",
    ["sqlite:////tmp/x.db", "sqlite:///../x.db", "sqlite:///a/../../x.db", "sqlite:///~/x.db", "http://h:5000"],
)
def test_tracking_uris_outside_are_refused(tmp_path, uri):
    from mnistlab.received.run_config import check_write_locations

    config = mlflow_config(uri)
    config["logger"]["mlflow"]["save_dir"] = str(tmp_path)
    with pytest.raises(ReceivedFileError):
        check_write_locations(config, tmp_path, "config.yaml")


@pytest.mark.parametrize("uri", ["sqlite:///%2Ftmp%2Fx.db", "sqlite:///a/%2e%2e/%2e%2e/x.db"])
def test_percent_encoded_tracking_uris_are_refused(tmp_path, uri):
    from sqlalchemy.engine import make_url

    from mnistlab.received.run_config import check_write_locations

    assert make_url(uri).database in ("/tmp/x.db", "a/../../x.db")  # where MLflow's store would be
    config = mlflow_config(uri)
    config["logger"]["mlflow"]["save_dir"] = str(tmp_path)
    with pytest.raises(ReceivedFileError):
        check_write_locations(config, tmp_path, "config.yaml")


@pytest.mark.parametrize(
    "text",
    ["label,predicted\n", "x,y\n1,2\n", "label,predicted\n1,nan\n", "label,predicted\n-1,2\n", "label,predicted\n1\n"]
    + ["label,predicted\n1,2,3\n", "label,predicted\n1000,2\n", "label,predicted\n\u0661,2\n", "\xff"],
)
def test_malformed_predictions_are_one_line(tmp_path, text):
    from mnistlab.received.predictions import read_predictions

    path = tmp_path / "test_predictions.csv"
    path.write_bytes(text.encode("latin-1") if text == "\xff" else text.encode())
    with pytest.raises(ReceivedFileError):
        read_predictions(path)


def test_a_huge_predictions_file_is_refused_before_reading(tmp_path):
    from mnistlab.received.predictions import read_predictions

    path = tmp_path / "test_predictions.csv"
    with open(path, "wb") as f:
        f.truncate(64 << 20)
    with pytest.raises(ReceivedFileError):
        read_predictions(path)


@pytest.mark.parametrize(
    "dirpath",
    ["OUT", "OUT/..", "/", "", ".", "OUT/../HERE", "HERE/..", "HERE/../checkpoints", "HERE/./"],
)
def test_model_checkpoint_paths_stay_in_the_checkpoints_folder(tmp_path, dirpath):
    from mnistlab.received.checkpoint import model_checkpoint_state

    here, outside = tmp_path / "run" / "checkpoints", tmp_path / "outside"
    here.mkdir(parents=True)
    outside.mkdir()
    for folder in (here, outside, tmp_path):
        (folder / "a.ckpt").write_bytes(b"x")
    dirpath = dirpath.replace("OUT", str(outside)).replace("HERE", str(here))
    names = [str(outside / "a.ckpt"), str(tmp_path / "a.ckpt"), f"{dirpath}/a.ckpt", f"{dirpath}/../a.ckpt", "a.ckpt"]
    names += [f"{dirpath}/x/../a.ckpt", str(here / ".." / "a.ckpt"), str(here / "a.ckpt" / "..")]
    state = {"dirpath": dirpath, "best_k_models": {name: 0.5 for name in names}, "kth_best_model_path": names[3]}
    state.update(best_model_path=names[2], last_model_path=names[0])
    kept = model_checkpoint_state(state, here)
    if kept is None:
        return
    paths = [*kept["best_k_models"], kept["best_model_path"], kept["kth_best_model_path"], kept["last_model_path"]]
    for path in filter(None, paths):
        assert os.path.realpath(os.path.dirname(path)) == os.path.realpath(here), path
    assert os.path.realpath(kept["dirpath"]) == os.path.realpath(here)


def hydra_value(override_value: str):
    """What a job sees for `key=<override_value>`: Hydra's parse, then OmegaConf's resolution."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    value = OverridesParser.create().parse_overrides([f"key={override_value}"])[0].value()
    return OmegaConf.create({"key": value}).key


@pytest.mark.parametrize("name", ["plain 1", "it's", "a=b,c", "x\\"])
def test_quoted_folder_names_reach_the_job_unchanged(name):
    from mnistlab.settings.overrides import quoted

    assert hydra_value(quoted(name)) == name


def test_folder_names_with_backslashes_reach_the_job_unchanged_and_interpolations_are_refused():
    from mnistlab.errors import UserError
    from mnistlab.settings.overrides import quoted

    for name in ("a\\b", "a\\'b", "a\\\\"):
        assert hydra_value(quoted(name)) == name
    for name in ("${oc.env:HOME}", "outputs/${oc.decode:..}/${oc.decode:..}"):
        with pytest.raises(UserError, match="would read"):
            quoted(name)
