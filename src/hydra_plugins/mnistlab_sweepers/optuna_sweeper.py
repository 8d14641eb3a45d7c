"""An Optuna study as a Hydra sweeper, built on Optuna's ask/tell API (Optuna >= 4).

Each batch of trials is asked from the study, launched as Hydra jobs (any launcher), and told back:
the job's `metric` as the value, a raised optuna.TrialPruned as pruned, any other error as failed.
The study lives in an Optuna storage (SQLite in the sweep folder by default), so running the same
command again continues it: finished trials are kept, trials a killed sweep left running are queued again.
Several sweeps may share one study through a storage they all reach (PostgreSQL, a journal file on a shared
disk): together they run n_trials, each trial once, and each ends when the whole study has. Job numbers are
trial numbers, so <sweep dir>/<n>/ holds trial n's run.
"""

import json
import os
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.override_parser.types import Transformer
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from mnistlab.compat.hydra import job_outcome
from mnistlab.errors import ConfigError
from mnistlab.received.files import refuse_links
from mnistlab.runs.checkpoints import global_step, latest_checkpoint
from mnistlab.settings.overrides import quoted
from mnistlab.sweeps.objectives import Objectives
from mnistlab.sweeps.parallel import jobs_at_once
from mnistlab.sweeps.records import PRUNING_OVERRIDE, RECORD, finite, is_pruned, read_record
from mnistlab.sweeps.study_storage import open_storage, shown

from . import _objectives
from ._failures import FailureCap, SweepStopped
from ._search_space import as_overrides, split

BEST_FILE, STORAGE_FILE = "best_params.yaml", "optuna.db"
# User attributes of trials. Not counted towards n_trials: INTERRUPTED, one a killed sweep left running,
# and SURPLUS, one asked when other sweeps of the study had already asked for the rest of n_trials.
INTERRUPTED, SURPLUS = "interrupted", "surplus"
SWEEP = "sweep"  # host:pid of the sweep that asked for the trial
HEARTBEAT = "heartbeat"  # when the sweep running the trial last said it was alive (time.time())
BEAT_EVERY, STALE_AFTER = 10.0, 60.0  # seconds; a running trial without a beat for STALE_AFTER is a killed sweep's
FIRST_BEAT_WITHIN = 1.0  # seconds: a sweep beats right after asking for a trial
WAIT_EVERY = 2.0  # seconds between looks at the trials other sweeps are running
CREATE_ATTEMPTS = 3  # at opening the study


def counted(study) -> list:
    """The study's trials that count towards n_trials, in order."""
    trials = study.get_trials(deepcopy=False)
    return [t for t in trials if not (t.user_attrs.get(INTERRUPTED) or t.user_attrs.get(SURPLUS))]


def sweep_is_gone(trial) -> bool:
    """Whether the sweep that runs `trial` was a process of this machine that has ended (killed): its trial need
    not wait STALE_AFTER seconds to be run again."""
    host, _, pid = str(trial.user_attrs.get(SWEEP, "")).rpartition(":")
    if (
        host != socket.gethostname()
        or not (pid.isascii() and pid.isdigit() and len(pid) <= 9)
        or int(pid) == os.getpid()
    ):
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, another user's
        return False
    return False


def continued(trial, sweep_dir: Path) -> List[str]:
    """The run of a trial a killed sweep left running continues from its newest checkpoint: its job folder
    becomes the new trial's (job numbers are trial numbers), and the job resumes there."""
    retry_of = trial.user_attrs.get("retry_of")
    if not isinstance(retry_of, int) or isinstance(retry_of, bool) or retry_of < 0:
        return []
    old, new = sweep_dir / str(retry_of), sweep_dir / str(trial.number)
    if new.exists() or not old.is_dir() or old.is_symlink() or read_record(old)["status"] != "unfinished":
        return []
    refuse_links(old)
    checkpoint = latest_checkpoint(old)
    if checkpoint is None:
        return []
    step = global_step(checkpoint)
    os.rename(old, new)
    print(f"[sweep] trial {trial.number} continues trial {retry_of} from step {step} (folder {new.name})", flush=True)
    return [f"resume={quoted(str(new.absolute()))}", "hydra.output_subdir=null"]


def suggest(trial, name: str, distribution) -> None:
    """One parameter of the search space drawn for `trial`, as study.ask(space) draws it."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(distribution, CategoricalDistribution):
        trial.suggest_categorical(name, distribution.choices)
    elif isinstance(distribution, IntDistribution):
        trial.suggest_int(name, distribution.low, distribution.high, step=distribution.step, log=distribution.log)
    else:
        trial.suggest_float(name, distribution.low, distribution.high, step=distribution.step, log=distribution.log)


class Heartbeat:
    """Says every BEAT_EVERY seconds, from a thread, that the trials this sweep runs are alive: another sweep of
    the study takes a running trial without recent beats for one a killed sweep left (and runs it again)."""

    def __init__(self) -> None:
        self.trials: list = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def __enter__(self) -> "Heartbeat":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.thread.join()

    def beat(self) -> None:
        for trial in list(self.trials):
            trial.set_user_attr(HEARTBEAT, time.time())

    def run(self) -> None:
        while not self.stopped.wait(BEAT_EVERY):
            try:
                self.beat()
            except Exception:  # e.g. a trial was told meanwhile, or the database hiccuped: the next beat counts
                pass


def consecutive(trials: list) -> List[list]:
    """Runs of consecutive trial numbers: each is launched with job numbers equal to its trial numbers."""
    groups: List[list] = []
    for trial in trials:
        if groups and trial.number == groups[-1][-1].number + 1:
            groups[-1].append(trial)
        else:
            groups.append([trial])
    return groups


class OptunaSweeper(Sweeper):
    def __init__(
        self,
        sampler: Any,
        pruner: Any,
        study_name: str,
        storage: Optional[str],
        metric: str,
        direction: str,
        n_trials: int,
        n_jobs: Optional[int],
        max_failure_rate: float,
        params: Optional[Dict[str, str]],
    ) -> None:
        self.sampler_config, self.pruner_config = sampler, pruner  # configs with a _target_ (or null)
        self.study_name, self.storage = study_name, storage
        self.metric, self.direction = metric, direction  # each one value, or a list: several objectives
        self.objectives: Optional[Objectives] = None  # made from them by check_settings
        self.n_trials, self.n_jobs = n_trials, n_jobs
        self.max_failure_rate, self.params = max_failure_rate, params or {}
        self.config: Optional[DictConfig] = None
        self.hydra_context: Optional[HydraContext] = None
        self.launcher = None
        self.seeded = False  # the sampler is made at the first trial asked
        self.waiting_for: Optional[list] = None  # the other sweeps' running trials last said

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def check_settings(self) -> None:
        self.objectives = Objectives.of(self.metric, self.direction)
        _objectives.check(self.objectives, self.pruner_config)
        if self.n_trials < 1 or (self.n_jobs is not None and self.n_jobs < 1):
            raise ConfigError(f"hydra.sweeper.n_trials and n_jobs must be positive, got {self.n_trials}, {self.n_jobs}")

    def jobs_per_batch(self) -> int:
        """n_jobs, else as many as the launcher runs at once: joblib's n_jobs, SLURM's array_parallelism."""
        launcher = self.config.hydra.launcher
        return self.n_jobs or jobs_at_once(launcher) or launcher.get("array_parallelism") or 1

    def sweep(self, arguments: List[str]) -> None:
        import optuna

        assert self.config is not None and self.hydra_context is not None and self.launcher is not None
        self.check_settings()
        space, fixed = split(
            [f"{key}={value}" for key, value in self.params.items()] + list(arguments), self.hydra_context.config_loader
        )
        if not space:
            raise ConfigError(
                "nothing to search: set hydra.sweeper.params, or sweep on the command line, "
                "e.g. 'optimizer.lr=tag(log, interval(1e-4, 1e-2))'"
            )
        sweep_dir = Path(self.config.hydra.sweep.dir).absolute()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        refuse_links(sweep_dir)  # a study's folder is written again (multirun.yaml, jobs), trial folders moved
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        storage = self.storage or f"sqlite:///{sweep_dir / STORAGE_FILE}"
        study = self.open_study(storage, sweep_dir)
        trials = counted(study)
        cap = FailureCap(
            self.max_failure_rate, self.n_trials, failed=sum(t.state == optuna.trial.TrialState.FAIL for t in trials)
        )
        print(
            f"[sweep] {sum(t.state.is_finished() for t in trials)} of {self.n_trials} trials already finished",
            flush=True,
        )

        batch_size = self.jobs_per_batch()
        with Heartbeat() as heartbeat:
            try:
                while (unasked := self.unasked(study, sweep_dir)) > 0:
                    trials = [self.ask(study, space) for _ in range(min(batch_size, unasked))]
                    heartbeat.trials = [trial for trial in trials if self.within_n_trials(study, trial)]
                    heartbeat.beat()
                    for group in consecutive(list(heartbeat.trials)):
                        overrides = [
                            fixed
                            + as_overrides(trial.params)
                            + self.pruning_overrides(trial, storage)
                            + continued(trial, sweep_dir)
                            for trial in group
                        ]
                        results = self.launcher.launch(overrides, initial_job_idx=group[0].number)
                        for trial, result in zip(group, results):
                            self.tell(study, trial, result, cap)
                            heartbeat.trials.remove(trial)
                    if cap.exceeded():
                        self.write_best(study, sweep_dir, storage, fixed)
                        self.hydra_context.callbacks.on_multirun_end(config=self.config)  # the summary of what ran
                        raise SweepStopped(cap.stop_message("trials"))
            except BaseException:  # e.g. Ctrl-C: the trials it ran are queued again now, not once their beats stop
                for trial in heartbeat.trials:
                    self.run_again(study, trial)
                raise
        self.record_other_sweeps_trials(study, sweep_dir, fixed)
        self.write_best(study, sweep_dir, storage, fixed)

    def open_study(self, storage: str, sweep_dir: Path):
        """The study in its storage (new, or as a killed sweep left it), with our pruner."""
        import optuna
        from sqlalchemy.exc import SQLAlchemyError

        for attempt in range(CREATE_ATTEMPTS):
            try:
                study = optuna.create_study(
                    study_name=self.study_name,
                    storage=open_storage(storage),
                    directions=list(self.objectives.directions),
                    load_if_exists=True,
                )
                break
            except SQLAlchemyError:  # sweeps started at once both create the tables: the later finds them next time
                if attempt + 1 == CREATE_ATTEMPTS:
                    raise
                time.sleep(1.0)
        _objectives.check_study(study, self.objectives, self.study_name)
        study.pruner = instantiate(self.pruner_config) if self.pruner_config else optuna.pruners.NopPruner()
        print(
            f"[sweep] Optuna {optuna.__version__} study '{self.study_name}' in {shown(storage)} ({self.objectives})",
            flush=True,
        )
        self.requeue_stale(study, sweep_dir)
        return study

    def ask(self, study, space: dict):
        """A trial with its parameters, drawn by a sampler seeded with seed + the number of counted trials before
        it (its place in the study): a continued study draws what a study never stopped would have drawn there
        (interrupted and surplus trials take no place), and sweeps sharing a study, whose trials have different
        places, draw different trials."""
        trial = study.ask()
        trial.set_user_attr(SWEEP, f"{socket.gethostname()}:{os.getpid()}")  # a dead sweep's trials are found at once
        place = sum(t.number < trial.number for t in counted(study))
        study.sampler = self.make_sampler(place)
        if not self.seeded:
            seed, self.seeded = (self.sampler_config or {}).get("seed"), True
            print(
                f"[sweep] trials drawn by {type(study.sampler).__name__}"
                + ("" if seed is None else f" (seed {seed} + the trial's place in the study)"),
                flush=True,
            )
        for name, distribution in space.items():
            suggest(trial, name, distribution)
        return trial

    def within_n_trials(self, study, trial) -> bool:
        """Whether fewer than n_trials counted trials came before `trial`; if not, other sweeps of the study
        asked for the rest meanwhile, and it is marked surplus rather than run."""
        from optuna.trial import TrialState

        if sum(t.number < trial.number for t in counted(study)) < self.n_trials:
            return True
        trial.set_user_attr(SURPLUS, True)
        study.tell(trial, state=TrialState.FAIL)
        return False

    def unasked(self, study, sweep_dir: Path) -> int:
        """How many of n_trials no sweep has asked for yet. When none, it waits while other sweeps run trials
        (those of killed sweeps are queued again, to be asked here), and says 0 once the whole study has finished."""
        from optuna.trial import TrialState

        while True:
            trials = counted(study)
            unasked = self.n_trials - sum(t.state != TrialState.WAITING for t in trials)
            running = [t.number for t in trials if t.state == TrialState.RUNNING]
            if unasked > 0 or not running:
                return max(unasked, 0)
            if running != self.waiting_for:
                print(f"[sweep] waiting for trial(s) {', '.join(map(str, running))}, run by other sweeps", flush=True)
                self.waiting_for = running
            time.sleep(WAIT_EVERY)
            self.requeue_stale(study, sweep_dir)

    def make_sampler(self, place: int):
        """The sampler for the trial at `place` (counted trials before it), its seed offset by that place: the
        same seed for every trial would draw the same parameters again in a new process."""
        config = (
            OmegaConf.to_container(self.sampler_config, resolve=True)
            if self.sampler_config
            else {"_target_": "optuna.samplers.TPESampler"}
        )  # sampler=null: Optuna's default
        if config.get("seed") is not None:
            config["seed"] += place
        return instantiate(config)

    def stale_trials(self, study) -> list:
        """Running trials whose sweep was killed: no heartbeat for STALE_AFTER seconds, or none at all."""
        from optuna.trial import TrialState

        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if any(HEARTBEAT not in t.user_attrs for t in running):  # maybe just asked by a live sweep
            time.sleep(FIRST_BEAT_WITHIN)
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        return [t for t in running if time.time() - t.user_attrs.get(HEARTBEAT, 0.0) > STALE_AFTER or sweep_is_gone(t)]

    def requeue_stale(self, study, sweep_dir: Path) -> None:
        """Trials a killed sweep left running: one whose job had ended is told its outcome from the job's record;
        any other is marked failed and interrupted, which does not count, and its parameters are queued again.
        Another sweep of the study may do it first: then this one leaves the trial alone."""
        import optuna
        from optuna.exceptions import UpdateFinishedTrialError

        for stale in self.stale_trials(study):
            record = read_record(sweep_dir / str(stale.number))  # job number = trial number
            if record["status"] == "unfinished" or not set(as_overrides(stale.params)) <= set(record["overrides"]):
                self.run_again(study, stale)
                continue
            try:
                self.tell_from_record(study, optuna.trial.Trial(study, stale._trial_id), record)
            except UpdateFinishedTrialError:  # another sweep of the study did
                continue
            print(
                f"[sweep] trial {stale.number} had ended ({record['status']}) when the sweep was interrupted: "
                f"told from its job.json",
                flush=True,
            )

    def run_again(self, study, stale) -> None:
        """A trial left running: marked failed and interrupted, which does not count, and its parameters queued
        again; unless another sweep of the study has done so (or told the trial) meanwhile."""
        import optuna
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        trial = optuna.trial.Trial(study, stale._trial_id)  # reaches a trial this process may not have asked for
        try:
            trial.set_user_attr(INTERRUPTED, True)
            study.tell(trial, state=TrialState.FAIL)
        except UpdateFinishedTrialError:
            return
        study.enqueue_trial(stale.params, user_attrs={"retry_of": stale.number})
        print(f"[sweep] trial {stale.number} was left running by an interrupted sweep: it runs again", flush=True)

    def tell_from_record(self, study, trial, record: dict) -> None:
        from optuna.trial import TrialState

        values = self.objectives.values(record.get("metrics") or {})
        if record["status"] == "ok" and values is not None:
            study.tell(trial, values)
        elif record["status"] == "pruned":
            study.tell(trial, state=TrialState.PRUNED)
        else:
            trial.set_user_attr("error", record.get("error") or f"no finite {self.objectives.names}")
            study.tell(trial, state=TrialState.FAIL)

    def pruning_overrides(self, trial, storage: str) -> List[str]:
        """The job reports each validation's metric to its trial and stops when the pruner says so."""
        if not self.pruner_config:
            return []
        callback = {
            "_target_": "mnistlab.sweeps.pruning.OptunaPruning",
            "storage": storage,
            "study_name": self.study_name,
            "trial_id": trial._trial_id,
            "monitor": self.metric,
            "pruner": OmegaConf.to_container(self.pruner_config, resolve=True),
        }
        return [f"{PRUNING_OVERRIDE}={Transformer.str(callback)}"]

    def tell(self, study, trial, result: JobReturn, cap: FailureCap) -> None:
        from optuna.trial import TrialState

        name = f"trial {trial.number}"
        if result.status == JobStatus.COMPLETED:
            metrics = result.return_value if isinstance(result.return_value, Mapping) else {}
            values = self.objectives.values(metrics)
            if values is not None:
                # kept in the study for the summaries of other sweeps sharing it
                trial.set_user_attr("metrics", {key: finite(v) for key, v in metrics.items()})
                study.tell(trial, values)
                print(_objectives.progress(study, trial.number, self.objectives, values), flush=True)
                return
            missing = next(m for m in self.objectives.metrics if finite(metrics.get(m)) is None)
            error = cap.fail(name, f"the task returned no finite {missing}: {metrics.get(missing)!r}")
        elif is_pruned(job_outcome(result)):
            study.tell(trial, state=TrialState.PRUNED)
            print(f"[sweep] {name} {job_outcome(result)}", flush=True)
            return
        else:
            error = cap.record(result, name)
        trial.set_user_attr("error", error)
        study.tell(trial, state=TrialState.FAIL)

    def record_other_sweeps_trials(self, study, sweep_dir: Path, fixed: List[str]) -> None:
        """A job.json for each trial that another sweep ran elsewhere (its job folder is not here), from the
        study: this sweep's summary shows the whole study."""
        from optuna.trial import TrialState

        for trial in counted(study):
            job_dir = sweep_dir / str(trial.number)
            if job_dir.exists() or not trial.state.is_finished():
                continue
            status = {TrialState.COMPLETE: "ok", TrialState.PRUNED: "pruned"}.get(trial.state, "failed")
            record = {
                "status": status,
                "seconds": trial.duration.total_seconds() if trial.duration else None,
                "overrides": fixed + as_overrides(trial.params),
                "metrics": trial.user_attrs.get("metrics"),
                "error": trial.user_attrs.get("error"),
                "run by": "another sweep of the study",
            }
            job_dir.mkdir()
            (job_dir / RECORD).write_text(json.dumps(record, indent=2))

    def write_best(self, study, sweep_dir: Path, storage: str, fixed: List[str]) -> None:
        import yaml
        from optuna.trial import TrialState

        trials = counted(study)
        counts = {
            name: sum(t.state == state for t in trials)
            for name, state in (
                ("complete", TrialState.COMPLETE),
                ("pruned", TrialState.PRUNED),
                ("failed", TrialState.FAIL),
            )
        }
        result: Dict[str, Any] = {
            "study_name": self.study_name,
            "storage": shown(storage),
            "metric": list(self.objectives.metrics) if self.objectives.multi else self.metric,
            "direction": list(self.objectives.directions) if self.objectives.multi else self.direction,
            "trials": counts,
        }
        if self.objectives.multi:  # no single best: the trials no other beats in every objective
            result["pareto_front"] = _objectives.pareto_front(study, self.objectives, fixed)
            print(_objectives.front_line(result["pareto_front"]), flush=True)
        elif counts["complete"]:
            best = study.best_trial
            result.update(
                best_trial=best.number,
                best_value=best.value,
                best_params=dict(best.params),
                command="python train.py " + " ".join(fixed + as_overrides(best.params)),
            )
            print(
                f"[sweep] best {self.metric} {best.value:.4f} (trial {best.number}): "
                f"{' '.join(as_overrides(best.params))}",
                flush=True,
            )
        else:
            result.update(best_trial=None, best_value=None, best_params=None)
            print("[sweep] no trial completed: no best parameters", flush=True)
        (sweep_dir / BEST_FILE).write_text(yaml.safe_dump(result, sort_keys=False))
        print(f"[sweep] written {sweep_dir / BEST_FILE}", flush=True)
