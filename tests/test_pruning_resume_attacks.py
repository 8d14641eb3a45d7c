"""Crafted run folders, checkpoints and Optuna studies against a continued trial's pruning state: the pruning
callback of a resumed run comes from the command line (never the saved config), its count of validations from the
checkpoint, and a continued trial starts with the interrupted trial's reports (mnistlab.runs.resume,
mnistlab.received.checkpoint, mnistlab.sweeps.pruning). Each input either works as data or is one
`error:` line and exit code 2; nothing outside the run or sweep folder is written, nothing already written is lost."""

import json
import shutil
import sqlite3
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, quick_overrides


def variants(values, ids, default):
    """Parameters with these ids: those in `default` in the default run, the others under `pytest -m slow`."""
    return [pytest.param(v, id=i, marks=() if i in default else pytest.mark.slow) for v, i in zip(values, ids)]


def refused_in_one_line(result) -> bool:
    lines = result.stderr.strip().splitlines()
    return result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:")


# --- a resumed run's saved config ------------------------------------------------------------------------------


def copied_run(tiny_run, tmp_path) -> Path:
    return Path(shutil.copytree(tiny_run, tmp_path / "run", symlinks=True))


def edit_saved_config(run: Path, change) -> None:
    path = run / ".hydra" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    change(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def study(tmp_path, directions=("maximize",)):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    return optuna.create_study(study_name="mnistlab", storage=storage, directions=list(directions)), storage


def pruning_override(storage: str, trial_id: int) -> str:
    """What the Optuna sweeper puts on a trial's command line (pruning_overrides): a pruner that never prunes."""
    from hydra.core.override_parser.types import Transformer

    return f"+callbacks.optuna_pruning={Transformer.str({**file_pruning(storage), 'trial_id': trial_id})}"


def file_pruning(storage: str) -> dict:
    """The pruning callback a sweep job's saved config holds: its own, interrupted trial's (trial 0)."""
    return {
        "_target_": "mnistlab.sweeps.pruning.OptunaPruning",
        "storage": storage,
        "study_name": "mnistlab",
        "trial_id": 0,
        "monitor": "val/acc",
        "pruner": {"_target_": "optuna.pruners.NopPruner"},
    }


def resume(in_process, run: Path, *extra):
    return in_process("train.py", f"resume={run}", "trainer.max_epochs=2", "threads=1", *extra)


def test_the_files_pruning_callback_is_dropped_on_a_plain_resume(tiny_run, tmp_path, in_process):
    """A sweep job's folder resumed by hand: the interrupted trial's link is not built (its storage, outside the
    run folder, would be refused by the write-location check, or opened)."""
    run, elsewhere = copied_run(tiny_run, tmp_path), tmp_path / "elsewhere"
    edit_saved_config(run, lambda c: c["callbacks"].update(optuna_pruning=file_pruning(f"sqlite:///{elsewhere}.db")))
    result = resume(in_process, run)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not Path(f"{elsewhere}.db").exists()


def test_the_command_lines_pruning_callback_reports_to_its_trial(tiny_run, tmp_path, in_process):
    """The continued trial's callback, from the command line, replaces the file's (which names another study)."""
    run = copied_run(tiny_run, tmp_path)
    other = tmp_path / "other.db"
    edit_saved_config(run, lambda c: c["callbacks"].update(optuna_pruning=file_pruning(f"sqlite:///{other}")))
    created, storage = study(tmp_path)
    trial = created.ask()
    result = resume(in_process, run, pruning_override(storage, trial._trial_id))
    assert result.returncode == 0, result.stderr[-2000:]
    assert not other.exists()
    assert list(created.trials[0].intermediate_values) == [0]  # the one validation of its second epoch


@pytest.mark.parametrize("callbacks", variants([[], "none", 7], ["list", "string", "number"], {"list"}))
def test_a_callbacks_section_of_another_kind_is_one_line(tiny_run, tmp_path, in_process, callbacks):
    run = copied_run(tiny_run, tmp_path)
    edit_saved_config(run, lambda c: c.update(callbacks=callbacks))
    result = resume(in_process, run)
    assert refused_in_one_line(result), result.stderr[-2000:]


@pytest.mark.parametrize(
    "entry", variants([None, "x", [1, 2], 7], ["null", "string", "list", "number"], {"null", "list"})
)
@pytest.mark.parametrize("with_pruning", [False, True], ids=["plain", "pruning"])
def test_an_odd_pruning_entry_is_dropped(tiny_run, tmp_path, in_process, entry, with_pruning):
    """The file's callbacks.optuna_pruning, whatever it holds, is dropped before the checks (one of another kind
    than a mapping would be refused by them): the resumed run works."""
    run = copied_run(tiny_run, tmp_path)
    edit_saved_config(run, lambda c: c["callbacks"].update(optuna_pruning=entry))
    extra = []
    if with_pruning:
        created, storage = study(tmp_path)
        extra = [pruning_override(storage, created.ask()._trial_id)]
    result = resume(in_process, run, *extra)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_sweepers_pruning_override_on_a_callbacks_list_is_one_line(tiny_run, tmp_path, in_process):
    run = copied_run(tiny_run, tmp_path)
    edit_saved_config(run, lambda c: c.update(callbacks=[]))
    created, storage = study(tmp_path)
    result = resume(in_process, run, pruning_override(storage, created.ask()._trial_id))
    assert refused_in_one_line(result), result.stderr[-2000:]


@pytest.mark.parametrize("callbacks", [None, "none"], ids=["null", "string"])
def test_a_saved_config_without_checkpoint_callbacks_resumes_or_is_one_line(tiny_run, tmp_path, in_process, callbacks):
    run = copied_run(tiny_run, tmp_path)
    edit_saved_config(run, lambda c: c.update(callbacks=callbacks))
    created, storage = study(tmp_path)
    result = resume(in_process, run, pruning_override(storage, created.ask()._trial_id))
    assert result.returncode == 0 or refused_in_one_line(result), result.stderr[-2000:]


@pytest.mark.parametrize("with_pruning", [False, True], ids=["plain", "pruning"])
@pytest.mark.parametrize(
    "reference",
    variants(
        [
            "${callbacks.optuna_pruning.monitor}",
            "${callbacks.optuna_pruning}",
            "${callbacks.optuna_pruning.pruner._target_}",
        ],
        ["monitor", "whole", "nested"],
        {"whole"},
    ),
)
def test_references_to_the_dropped_entry_are_one_line(tiny_run, tmp_path, in_process, reference, with_pruning):
    """Keys elsewhere in the saved config that refer to callbacks.optuna_pruning dangle once it is dropped."""
    run = copied_run(tiny_run, tmp_path)

    def change(config):
        config["callbacks"]["optuna_pruning"] = file_pruning("sqlite:///x.db")
        config["callbacks"]["checkpoint"]["monitor"] = reference

    edit_saved_config(run, change)
    extra = []
    if with_pruning:
        created, storage = study(tmp_path)
        extra = [pruning_override(storage, created.ask()._trial_id)]
    result = resume(in_process, run, *extra)
    assert refused_in_one_line(result), result.stderr[-2000:]


def test_a_selected_reference_to_the_dropped_entry_takes_its_default(tiny_run, tmp_path, in_process):
    run = copied_run(tiny_run, tmp_path)

    def change(config):
        config["callbacks"]["optuna_pruning"] = file_pruning("sqlite:///x.db")
        config["callbacks"]["checkpoint"]["mode"] = "${oc.select:callbacks.optuna_pruning.mode,max}"

    edit_saved_config(run, change)
    result = resume(in_process, run)
    assert result.returncode == 0, result.stderr[-2000:]


def test_a_pruning_callback_reached_through_an_interpolated_section_is_refused(tiny_run, tmp_path, in_process):
    """`callbacks: ${elsewhere}`: the drop does not see the file's entry, but the target check refuses it."""
    run, target = copied_run(tiny_run, tmp_path), tmp_path / "reached.db"

    def change(config):
        config["elsewhere"] = {**config["callbacks"], "optuna_pruning": file_pruning(f"sqlite:///{target}")}
        config["callbacks"] = "${elsewhere}"

    edit_saved_config(run, change)
    result = resume(in_process, run)
    assert refused_in_one_line(result), result.stderr[-2000:]
    assert not target.exists()


# --- a resumed run's checkpoint ----------------------------------------------------------------------------------


def edit_run_checkpoints(run: Path, change) -> None:
    import torch

    for path in sorted((run / "checkpoints").glob("*.ckpt")):
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        change(checkpoint)
        torch.save(checkpoint, path)


def pruning_state(state):
    return lambda checkpoint: checkpoint.setdefault("callbacks", {}).update(OptunaPruning=state)


def odd_states():
    import torch

    return {
        "flag": {"validations": True},
        "float": {"validations": 2.0},
        "too-large": {"validations": 2**53},
        "tensor": {"validations": torch.tensor(3)},
        "nested": {"validations": {"validations": 1}},
        "list": [1],
        "empty": {},
        "zero": 0,
        "string": "validations",
        "key-not-a-name": {1: 2},
    }


@pytest.mark.parametrize("name", variants(list(odd_states()), list(odd_states()), {"flag", "too-large", "string"}))
def test_odd_pruning_states_in_a_checkpoint_are_one_line(tiny_run, tmp_path, in_process, name):
    run = copied_run(tiny_run, tmp_path)
    edit_run_checkpoints(run, pruning_state(odd_states()[name]))
    created, storage = study(tmp_path)
    result = resume(in_process, run, pruning_override(storage, created.ask()._trial_id))
    assert refused_in_one_line(result), result.stderr[-2000:]
    assert "callbacks.OptunaPruning" in result.stderr
    assert created.trials[0].intermediate_values == {}  # refused before any training


@pytest.mark.parametrize(
    "state", [{"validations": 5}, OrderedDict(validations=5), None], ids=["dict", "ordered-dict", "null"]
)
def test_a_saved_count_of_validations_goes_on(tiny_run, tmp_path, in_process, state):
    """The count of a checkpoint (any mapping, as torch keeps it) is where the trial's reports go on; none: from 0."""
    run = copied_run(tiny_run, tmp_path)
    edit_run_checkpoints(run, pruning_state(state))
    created, storage = study(tmp_path)
    result = resume(in_process, run, pruning_override(storage, created.ask()._trial_id))
    assert result.returncode == 0, result.stderr[-2000:]
    assert list(created.trials[0].intermediate_values) == [5 if state else 0]


def test_a_pruning_state_without_a_pruning_callback_is_ignored(tiny_run, tmp_path, in_process):
    """A sweep job resumed by hand: Lightning leaves the state of a callback the run no longer has alone."""
    run = copied_run(tiny_run, tmp_path)
    edit_run_checkpoints(run, pruning_state({"validations": 5}))
    result = resume(in_process, run)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (run / "metrics.json").is_file()


def test_pruning_state_beside_a_callbacks_list_is_ignored(tiny_run, tmp_path, in_process):
    """`callbacks` of a checkpoint not a mapping: there is no OptunaPruning state to check, and none is restored."""
    run = copied_run(tiny_run, tmp_path)
    edit_run_checkpoints(run, lambda checkpoint: checkpoint.update(callbacks=[{"OptunaPruning": {"validations": -1}}]))
    created, storage = study(tmp_path)
    result = resume(in_process, run, pruning_override(storage, created.ask()._trial_id))
    assert result.returncode == 0, result.stderr[-2000:]
    assert list(created.trials[0].intermediate_values) == [0]


# --- a continued trial's reports, from the study's storage --------------------------------------------------------


def interrupted_trial(sweep: Path, directions=("maximize",), reports=((0, 0.5),), job=None, ask=True):
    """A study as a killed sweep leaves it: trial 0 interrupted (its job folder 0 unfinished, with a checkpoint)
    and queued again, as trial 1 once asked (`ask`); its reports are written as they are in the storage."""
    import optuna
    import torch

    sweep.mkdir(parents=True, exist_ok=True)
    created, _ = study(sweep, directions)
    first = created.ask()
    first.set_user_attr("interrupted", True)
    created.tell(first, state=optuna.trial.TrialState.FAIL)
    with sqlite3.connect(sweep / "optuna.db") as connection:
        connection.executemany(
            "INSERT INTO trial_intermediate_values (trial_id, step, intermediate_value, intermediate_value_type) "
            "VALUES (?, ?, ?, ?)",
            [(first._trial_id, step, value, kind) for step, value, kind in reports_rows(reports)],
        )
    connection.close()
    created.enqueue_trial({}, user_attrs={"retry_of": 0})
    if job is None:
        (sweep / "0" / "checkpoints").mkdir(parents=True)
        torch.save({"state_dict": {}, "global_step": 3}, sweep / "0" / "checkpoints" / "last.ckpt")
    else:
        shutil.copytree(job, sweep / "0", symlinks=True)
    (sweep / "0" / "job.json").write_text(json.dumps({"status": "unfinished", "overrides": []}))
    return created, created.ask() if ask else None


def reports_rows(reports):
    """(step, stored value, Optuna's kind of value) as the storage keeps them: NaN and infinities by kind."""
    for step, value in reports:
        if isinstance(value, float) and value != value:
            yield step, None, "NAN"
        elif value in (float("inf"), float("-inf")):
            yield step, None, "INF_POS" if value > 0 else "INF_NEG"
        else:
            yield step, value, "FINITE"


def restore(sweep: Path, trial, validations: int):
    """The continued trial's job restoring its pruning callback from a checkpoint that counted `validations`."""
    from mnistlab.sweeps.pruning import OptunaPruning

    callback = OptunaPruning(f"sqlite:///{sweep / 'optuna.db'}", "mnistlab", trial._trial_id, pruner=None)
    callback.load_state_dict({"validations": validations})
    return callback


def reported(created, number: int) -> dict:
    return {step: repr(value) for step, value in created.trials[number].intermediate_values.items()}


@pytest.mark.parametrize(
    "reports",
    [
        [(0, 0.5), (1, 0.75)],
        [(0, float("nan")), (1, float("inf")), (2, float("-inf"))],
    ],
    ids=["plain", "nan-and-inf"],
)
def test_a_continued_trial_takes_the_interrupted_trials_reports(tmp_path, reports):
    sweep = tmp_path / "sweep"
    created, trial = interrupted_trial(sweep, reports=reports)
    assert continued_overrides(trial, sweep)[0] == f"resume='{(sweep / '1').absolute()}'"
    restore(sweep, trial, validations=len(reports))
    assert reported(created, 1) == reported(created, 0)


def test_only_the_reports_before_the_checkpoints_count_are_copied(tmp_path):
    """Beyond the checkpoint the job reports again itself: copied, its own reports would be ignored as repeats."""
    sweep = tmp_path / "sweep"
    created, trial = interrupted_trial(sweep, reports=[(step, 0.5) for step in range(5)])
    restore(sweep, trial, validations=2)
    assert list(reported(created, 1)) == [0, 1]


@pytest.mark.parametrize(
    "reports",
    [[(-3, 0.5)], [("abc", 0.5)], [(0, "x")], [(0, 0.5), ("abc", 0.5)], [(2**62, 0.5)], [(1.5, 0.5)]],
    ids=["negative-step", "text-step", "text-value", "mixed-steps", "huge-step", "fractional-step"],
)
def test_odd_reports_of_the_interrupted_trial_are_skipped(tmp_path, reports):
    """What Optuna itself never writes: left out, never an exception (steps are read as Optuna reads them)."""
    sweep = tmp_path / "sweep"
    created, trial = interrupted_trial(sweep, reports=reports)
    restore(sweep, trial, validations=3)
    kept = {0: "0.5"} if reports == [(0, 0.5), ("abc", 0.5)] else {}
    assert reported(created, 1) == kept


def test_reports_in_a_multi_objective_study_are_not_copied(tmp_path):
    """Optuna has no reports in a multi-objective study (Trial.report refuses), but its storage can hold them."""
    sweep = tmp_path / "sweep"
    created, trial = interrupted_trial(sweep, directions=("maximize", "minimize"))
    restore(sweep, trial, validations=1)
    assert reported(created, 1) == {}


def test_the_copy_is_bounded(tmp_path, monkeypatch):
    """One storage write per report: a crafted study's count and reports cannot make it take hours."""
    import optuna

    from mnistlab.sweeps import pruning

    monkeypatch.setattr(pruning, "MAX_COPIED_REPORTS", 3)
    sweep = tmp_path / "sweep"
    _, trial = interrupted_trial(sweep, reports=[(step, 0.5) for step in range(10)])
    copied = []
    monkeypatch.setattr(optuna.trial.Trial, "report", lambda self, value, step: copied.append(step))
    restore(sweep, trial, validations=2**53 - 1)
    assert copied == [0, 1, 2]


def job_kept(sweep: Path) -> bool:
    return any((sweep / folder / "checkpoints" / "last.ckpt").is_file() for folder in ("0", "1"))


def continued_overrides(trial, sweep: Path):
    from hydra_plugins.mnistlab_sweepers.optuna_sweeper import continued

    return continued(trial, sweep)


def sweep_command(mnist_dir, sweep: Path) -> list:
    quick = [o for o in quick_overrides(mnist_dir, sweep) if not o.startswith(("paths.", "trainer.max_epochs"))]
    return [
        str(ROOT / "train.py"),
        "-m",
        "hydra/sweeper=mnistlab_optuna",
        "hydra.sweeper.n_trials=1",
        "model=mlp",
        "model.net.hidden=[16]",
        "optimizer.lr=tag(log, interval(1e-3, 1e-1))",
        "+trainer.limit_train_batches=3",
        "trainer.max_epochs=2",
        *quick,
        f"hydra.sweep.dir={sweep}",
    ]


@pytest.mark.process
def test_a_sweep_continuing_a_trial_with_a_negative_report_step_is_not_a_traceback(mnist_dir, tiny_run, tmp_path):
    """The whole command: `train.py -m hydra/sweeper=mnistlab_optuna ... hydra.sweep.dir=<crafted folder>`."""
    sweep = tmp_path / "sweep"
    interrupted_trial(sweep, reports=[(-1, 0.5)], job=tiny_run, ask=False)
    result = subprocess.run(
        [sys.executable, *sweep_command(mnist_dir, sweep)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.returncode == 0 or refused_in_one_line(result), result.stderr[-2000:]
    assert job_kept(sweep)
