"""An Optuna study as a Hydra sweeper, built on Optuna's ask/tell API (Optuna >= 4).

Each batch of trials is asked from the study, launched as Hydra jobs (any launcher), and told back:
the job's `metric` as the value, a raised optuna.TrialPruned as pruned, any other error as failed.
The study lives in an Optuna storage (SQLite in the sweep folder by default), so running the same
command again continues it: finished trials are kept, trials a killed sweep left running are queued again.
Job numbers are trial numbers, so <sweep dir>/<n>/ holds trial n's run.
"""

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

from mnistlab.errors import ConfigError
from mnistlab.sweep_records import PRUNING_OVERRIDE, finite, is_pruned, read_record

from ._failures import FailureCap, SweepStopped

BEST_FILE, STORAGE_FILE = "best_params.yaml", "optuna.db"
INTERRUPTED = "interrupted"  # user attribute of a trial a killed sweep left running


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
    def __init__(self, sampler: Any, pruner: Any, study_name: str, storage: Optional[str], metric: str,
                 direction: str, n_trials: int, n_jobs: Optional[int], max_failure_rate: float,
                 params: Optional[Dict[str, str]]) -> None:
        self.sampler_config, self.pruner_config = sampler, pruner  # configs with a _target_ (or null)
        self.study_name, self.storage = study_name, storage
        self.metric, self.direction = metric, direction
        self.n_trials, self.n_jobs = n_trials, n_jobs
        self.max_failure_rate, self.params = max_failure_rate, params or {}
        self.config: Optional[DictConfig] = None
        self.hydra_context: Optional[HydraContext] = None
        self.launcher = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context,
                                                                 task_function=task_function, config=config)

    def check_settings(self) -> None:
        if self.metric.startswith("test/"):
            raise ConfigError(f"hydra.sweeper.metric={self.metric} would tune on the test set: use a val/ metric")
        if self.direction not in ("maximize", "minimize"):
            raise ConfigError(f"hydra.sweeper.direction must be maximize or minimize, got {self.direction!r}")
        if self.n_trials < 1 or (self.n_jobs is not None and self.n_jobs < 1):
            raise ConfigError(f"hydra.sweeper.n_trials and n_jobs must be positive, got {self.n_trials}, {self.n_jobs}")

    def jobs_per_batch(self) -> int:
        """n_jobs, else as many as the launcher runs at once: joblib's n_jobs, SLURM's array_parallelism."""
        from mnistlab.parallel import jobs_at_once

        launcher = self.config.hydra.launcher
        return self.n_jobs or jobs_at_once(launcher) or launcher.get("array_parallelism") or 1

    def sweep(self, arguments: List[str]) -> None:
        import optuna

        from ._search_space import as_overrides, split

        assert self.config is not None and self.hydra_context is not None and self.launcher is not None
        self.check_settings()
        space, fixed = split([f"{key}={value}" for key, value in self.params.items()] + list(arguments),
                             self.hydra_context.config_loader)
        if not space:
            raise ConfigError("nothing to search: set hydra.sweeper.params, or sweep on the command line, "
                              "e.g. 'optimizer.lr=tag(log, interval(1e-4, 1e-2))'")
        sweep_dir = Path(self.config.hydra.sweep.dir).absolute()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        storage = self.storage or f"sqlite:///{sweep_dir / STORAGE_FILE}"
        study = self.open_study(storage, sweep_dir)
        done = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished() and not t.user_attrs.get(INTERRUPTED)]
        cap = FailureCap(self.max_failure_rate, self.n_trials,
                         failed=sum(t.state == optuna.trial.TrialState.FAIL for t in done))
        finished = len(done)
        print(f"[sweep] {finished} of {self.n_trials} trials already finished", flush=True)

        batch_size = self.jobs_per_batch()
        while finished < self.n_trials:
            trials = [study.ask(space) for _ in range(min(batch_size, self.n_trials - finished))]
            for group in consecutive(trials):
                overrides = [fixed + as_overrides(trial.params) + self.pruning_overrides(trial, storage)
                             for trial in group]
                results = self.launcher.launch(overrides, initial_job_idx=group[0].number)
                for trial, result in zip(group, results):
                    self.tell(study, trial, result, cap)
            finished += len(trials)
            if cap.exceeded():
                self.write_best(study, sweep_dir, storage, fixed)
                self.hydra_context.callbacks.on_multirun_end(config=self.config)  # the summary of what ran
                raise SweepStopped(cap.stop_message("trials"))
        self.write_best(study, sweep_dir, storage, fixed)

    def open_study(self, storage: str, sweep_dir: Path):
        """The study in its storage (new, or as a killed sweep left it), with our sampler and pruner."""
        import optuna

        study = optuna.create_study(study_name=self.study_name, storage=storage, direction=self.direction,
                                    load_if_exists=True)
        trials_so_far = len(study.get_trials(deepcopy=False))
        study.sampler = self.make_sampler(trials_so_far)
        study.pruner = instantiate(self.pruner_config) if self.pruner_config else optuna.pruners.NopPruner()
        seed = (self.sampler_config or {}).get("seed")
        print(f"[sweep] Optuna {optuna.__version__} study '{self.study_name}' in {storage} ({self.direction} "
              f"{self.metric}) with {type(study.sampler).__name__}"
              + ("" if seed is None else f"(seed={seed + trials_so_far})"), flush=True)
        self.requeue_interrupted(study, sweep_dir)
        return study

    def make_sampler(self, trials_so_far: int):
        """The same seed in a new process would draw the same first trials again: offset it by the study's
        trials, which keeps a fresh study at the seed given and a continued one reproducible."""
        config = OmegaConf.to_container(self.sampler_config, resolve=True) if self.sampler_config else {
            "_target_": "optuna.samplers.TPESampler"}  # sampler=null: Optuna's default
        if config.get("seed") is not None:
            config["seed"] += trials_so_far
        return instantiate(config)

    def requeue_interrupted(self, study, sweep_dir: Path) -> None:
        """Trials still RUNNING belong to a sweep that was killed (one sweep per study at a time). One whose
        job had ended is told its outcome from the job's record; any other is marked failed and
        interrupted, which does not count, and its parameters are queued again."""
        import optuna
        from optuna.trial import TrialState

        from ._search_space import as_overrides

        for stale in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            trial = optuna.trial.Trial(study, stale._trial_id)  # reaches a trial this process did not ask for
            record = read_record(sweep_dir / str(stale.number))  # job number = trial number
            if record["status"] != "unfinished" and set(as_overrides(stale.params)) <= set(record["overrides"]):
                value = finite((record.get("metrics") or {}).get(self.metric))
                if record["status"] == "ok" and value is not None:
                    study.tell(trial, value)
                elif record["status"] == "pruned":
                    study.tell(trial, state=TrialState.PRUNED)
                else:
                    trial.set_user_attr("error", record.get("error") or f"no finite {self.metric}")
                    study.tell(trial, state=TrialState.FAIL)
                print(f"[sweep] trial {stale.number} had ended ({record['status']}) when the sweep was "
                      f"interrupted: told from its job.json", flush=True)
                continue
            trial.set_user_attr(INTERRUPTED, True)
            study.tell(trial, state=TrialState.FAIL)
            study.enqueue_trial(stale.params, user_attrs={"retry_of": stale.number})
            print(f"[sweep] trial {stale.number} was left running by an interrupted sweep: it runs again", flush=True)

    def pruning_overrides(self, trial, storage: str) -> List[str]:
        """The job reports each validation's metric to its trial and stops when the pruner says so."""
        if not self.pruner_config:
            return []
        callback = {"_target_": "mnistlab.pruning.OptunaPruning", "storage": storage,
                    "study_name": self.study_name, "trial_id": trial._trial_id, "monitor": self.metric,
                    "pruner": OmegaConf.to_container(self.pruner_config, resolve=True)}
        return [f"{PRUNING_OVERRIDE}={Transformer.str(callback)}"]

    def tell(self, study, trial, result: JobReturn, cap: FailureCap) -> None:
        from optuna.trial import TrialState

        name = f"trial {trial.number}"
        if result.status == JobStatus.COMPLETED:
            metrics = result.return_value if isinstance(result.return_value, Mapping) else {}
            value = finite(metrics.get(self.metric))
            if value is not None:
                study.tell(trial, value)
                print(f"[sweep] {name}: {self.metric} {value:.4f} (best so far {study.best_value:.4f}, "
                      f"trial {study.best_trial.number})", flush=True)
                return
            error = cap.fail(name, f"the task returned no finite {self.metric}: {metrics.get(self.metric)!r}")
        elif is_pruned(result._return_value):
            study.tell(trial, state=TrialState.PRUNED)
            print(f"[sweep] {name} {result._return_value}", flush=True)
            return
        else:
            error = cap.record(result, name)
        trial.set_user_attr("error", error)
        study.tell(trial, state=TrialState.FAIL)

    def write_best(self, study, sweep_dir: Path, storage: str, fixed: List[str]) -> None:
        import yaml
        from optuna.trial import TrialState

        from ._search_space import as_overrides

        trials = [t for t in study.get_trials(deepcopy=False) if not t.user_attrs.get(INTERRUPTED)]
        counts = {name: sum(t.state == state for t in trials)
                  for name, state in (("complete", TrialState.COMPLETE), ("pruned", TrialState.PRUNED),
                                      ("failed", TrialState.FAIL))}
        result: Dict[str, Any] = {"study_name": self.study_name, "storage": storage, "metric": self.metric,
                                  "direction": self.direction, "trials": counts}
        if counts["complete"]:
            best = study.best_trial
            result.update(best_trial=best.number, best_value=best.value, best_params=dict(best.params),
                          command="python train.py " + " ".join(fixed + as_overrides(best.params)))
            print(f"[sweep] best {self.metric} {best.value:.4f} (trial {best.number}): "
                  f"{' '.join(as_overrides(best.params))}", flush=True)
        else:
            result.update(best_trial=None, best_value=None, best_params=None)
            print("[sweep] no trial completed: no best parameters", flush=True)
        (sweep_dir / BEST_FILE).write_text(yaml.safe_dump(result, sort_keys=False))
        print(f"[sweep] written {sweep_dir / BEST_FILE}", flush=True)
