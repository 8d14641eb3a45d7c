"""Configs of the sweepers, stored where Hydra looks for them: hydra/sweeper=mnistlab_grid | mnistlab_optuna."""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class GridSweeperConf:
    """Hydra's basic sweeper (cartesian product of the sweep overrides) that records failed jobs and goes on."""

    _target_: str = "hydra_plugins.mnistlab_sweepers.grid_sweeper.GridSweeper"
    max_batch_size: Optional[int] = None  # jobs per launch; null: all at once
    params: Optional[Dict[str, str]] = None  # sweep overrides kept in config, e.g. {optimizer.lr: "1e-3,3e-4"}
    max_failure_rate: float = 1.0  # stop once more than this fraction of the jobs failed (checked per batch)


@dataclass
class TPESamplerConf:
    _target_: str = "optuna.samplers.TPESampler"
    seed: Optional[int] = None
    n_startup_trials: int = 10  # random trials before TPE models the results
    multivariate: bool = False


@dataclass
class RandomSamplerConf:
    _target_: str = "optuna.samplers.RandomSampler"
    seed: Optional[int] = None


@dataclass
class MedianPrunerConf:
    """Stop a trial whose val/acc after a validation is below the median of earlier trials at that validation."""

    _target_: str = "optuna.pruners.MedianPruner"
    n_startup_trials: int = 3  # never prune before this many trials finished
    n_warmup_steps: int = 0  # nor before this validation (0: from the first one on)
    interval_steps: int = 1


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.mnistlab_sweepers.optuna_sweeper.OptunaSweeper"
    _recursive_: bool = False  # the sweeper builds sampler and pruner itself (seed, jobs' pruning)
    defaults: List[Any] = field(default_factory=lambda: ["_self_", {"sampler": "tpe"}, {"pruner": None}])
    sampler: Any = None  # hydra/sweeper/sampler=tpe | random, or any optuna sampler via _target_;
    # a seeded sampler continuing a study of n trials gets seed + n, so that it does not repeat them
    pruner: Any = None  # hydra/sweeper/pruner=median; null: no pruning
    study_name: str = "mnistlab"
    storage: Optional[str] = None  # an Optuna storage URL, or journal://<file>; null: sqlite:///<sweep dir>/optuna.db
    metric: Any = "val/acc"  # the key of the metrics dict the training task returns; a list: several objectives,
    direction: Any = "maximize"  # e.g. [val/acc, model/parameters] and [maximize, minimize] (a Pareto front)
    n_trials: int = 20  # finished trials the study should hold (complete, pruned or failed)
    n_jobs: Optional[int] = None  # trials launched at once; null: joblib's n_jobs, SLURM's array_parallelism, or 1
    max_failure_rate: float = 0.5  # stop once more than this fraction of n_trials failed
    params: Optional[Dict[str, str]] = None  # the search space: {override key: choice/range/interval}


store = ConfigStore.instance()
store.store(group="hydra/sweeper", name="mnistlab_grid", node=GridSweeperConf, provider="mnistlab")
store.store(group="hydra/sweeper", name="mnistlab_optuna", node=OptunaSweeperConf, provider="mnistlab")
store.store(group="hydra/sweeper/sampler", name="tpe", node=TPESamplerConf, provider="mnistlab")
store.store(group="hydra/sweeper/sampler", name="random", node=RandomSamplerConf, provider="mnistlab")
store.store(group="hydra/sweeper/pruner", name="median", node=MedianPrunerConf, provider="mnistlab")
