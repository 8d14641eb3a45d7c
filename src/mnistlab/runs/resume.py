"""`train.py resume=<run dir>` / `ckpt_path=<run>/checkpoints/<file>` / `resume=auto`: continuing a run.

Before Hydra starts, continue_in_run_dir points it at the run directory (resume=auto first finds the run);
then resumed_config makes the config the run's own, with the command line's single-key overrides on top.
"""

from pathlib import Path
from typing import List, Optional

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mnistlab.errors import ReceivedFileError, UserError, one_line
from mnistlab.received.checkpoint import ReceivedCheckpoint
from mnistlab.received.files import refuse_links
from mnistlab.received.schemas import check_size
from mnistlab.received.yaml_file import read_yaml
from mnistlab.runs.checkpoints import latest_checkpoint, load_checkpoint
from mnistlab.runs.preemption import is_requeued
from mnistlab.runs.run_dir import FINAL_METRICS, SAVED_CONFIG, is_run_dir, run_dir_of, saved_config
from mnistlab.settings.hydra_mode import in_multirun
from mnistlab.settings.limits import DEFAULT_MAX_PARAMETERS
from mnistlab.settings.overrides import PRUNING_CALLBACK, RUN_POINTERS, argument, job_key, quoted


def original_overrides(run_dir: Path) -> frozenset:
    """What the run was started with (its .hydra/overrides.yaml, read as data): said again, they change nothing."""

    path = run_dir / ".hydra" / "overrides.yaml"
    return job_key(read_yaml(path, list)) if path.is_file() else frozenset()


def apply_overrides(cfg: DictConfig, overrides: list, groups: set, original: frozenset = frozenset()) -> None:
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.key_or_group
        if key in RUN_POINTERS or key.startswith("hydra") or job_key([override.input_line]) <= original:
            continue  # a continued sweep job, or resume=auto, repeats the overrides the run was made with
        if key == f"callbacks.{PRUNING_CALLBACK}":
            continue  # the sweeper's link to the trial: set after the saved config is checked (resumed_config)
        if key in groups:
            raise UserError(
                f"{override.input_line}: a resumed run keeps its config groups; "
                f"change single keys instead (e.g. trainer.max_epochs=10)"
            )
        try:
            if override.is_delete():
                parent, _, leaf = key.rpartition(".")
                node = OmegaConf.select(cfg, parent) if parent else cfg
                if isinstance(node, DictConfig) and leaf in node:
                    del node[leaf]
            else:
                OmegaConf.update(cfg, key, override.value(), merge=False, force_add=True)
        except (ValueError, TypeError, KeyError, OmegaConfBaseException) as err:  # e.g. a key into the file's list
            message = f"{override.input_line}: does not fit the saved config ({one_line(err)})"
            raise ReceivedFileError(message) from None


def requeued_sweep_job(cfg: DictConfig) -> bool:
    """A sweep job that SLURM started again after a requeue (preemption), whose folder holds an unfinished run
    with a checkpoint: it continues there rather than starting over."""
    if cfg.get("ckpt_path") is not None or not is_requeued() or not in_multirun():
        return False

    folder = Path(cfg.paths.output_dir)
    return not (folder / FINAL_METRICS).exists() and latest_checkpoint(folder) is not None


def resumed_config(cfg: DictConfig) -> DictConfig:
    """The config to train with: `cfg` itself, or for a resumed run its saved config and checkpoint.

    The saved config is read at the boundary (mnistlab.received.run_config): parsed as data, with this command
    line's `paths` (the run folder Hydra was pointed at), resolved once and checked; then this command line's
    overrides go on top. Trust and limits are the command line's alone: a file may not raise its own."""
    if cfg.get("resume") is not None:
        run_dir, ckpt_path = Path(cfg.resume), None  # its newest checkpoint, found below
    elif cfg.ckpt_path is not None and Path(cfg.ckpt_path).is_file() and run_dir_of(cfg.ckpt_path):
        run_dir, ckpt_path = run_dir_of(cfg.ckpt_path), Path(cfg.ckpt_path)
    elif requeued_sweep_job(cfg):
        run_dir, ckpt_path = Path(cfg.paths.output_dir), None
        print(f"requeued SLURM job: continuing its sweep job in {run_dir}", flush=True)
    else:
        return cfg
    refuse_links(run_dir)  # the run's logs, metrics and checkpoints are written there again
    if ckpt_path is not None:
        load_checkpoint(ckpt_path)  # refuse an unsafe or damaged file before anything else
    hydra = HydraConfig.get()
    trusted = list(cfg.get("trusted_modules") or [])
    paths = OmegaConf.to_container(cfg.paths, resolve=True)  # this command line's: the run folder itself
    original = original_overrides(run_dir)

    def command_line(config: dict) -> dict:
        node = OmegaConf.create(config)
        apply_overrides(node, list(hydra.overrides.task), set(hydra.runtime.choices), original)
        config = OmegaConf.to_container(node)
        if isinstance(config.get("callbacks"), dict):  # a continued trial's link to its trial: the command line's
            config["callbacks"].pop(PRUNING_CALLBACK, None)  # (set below), never the file's
        return config

    resumed = OmegaConf.create(saved_config(run_dir, trusted, paths, for_training=True, overrides=command_line))
    resumed.trusted_modules = trusted
    resumed.max_parameters = cfg.get("max_parameters", DEFAULT_MAX_PARAMETERS)
    resumed.resume = cfg.get("resume")
    resumed.paths = paths
    pruning = OmegaConf.select(cfg, f"callbacks.{PRUNING_CALLBACK}")  # the Optuna sweeper's, on this command line
    if pruning is not None:
        if resumed.get("callbacks") is None:
            resumed.callbacks = {}
        resumed.callbacks[PRUNING_CALLBACK] = OmegaConf.to_container(pruning, resolve=True)
    source = run_dir / SAVED_CONFIG
    check_size(OmegaConf.to_container(resumed.model.net), source, resumed.max_parameters, trusted)  # before building
    if ckpt_path is None:
        ckpt_path = latest_checkpoint(run_dir)
        if ckpt_path is None:
            raise UserError(f"resume={cfg.resume}: the run saved no checkpoint yet; start it again instead")
    resumed.ckpt_path = str(ckpt_path)
    print(
        f"continuing the run in {run_dir} from {ckpt_path}: its metrics.json, logs and checkpoints will be updated",
        flush=True,
    )  # not a new run folder: say so before training
    return resumed


def is_own_checkpoint(cfg: DictConfig) -> bool:
    """The checkpoint to fit from is one of this run folder's own (a resumed run), not one from elsewhere."""
    owner = run_dir_of(cfg.ckpt_path) if cfg.get("ckpt_path") else None
    return owner is not None and owner.resolve() == Path(cfg.paths.output_dir).resolve()


def epochs_processed(checkpoint: ReceivedCheckpoint) -> int:
    """Epochs whose batches all ran, from the fit loop's saved progress (0 where it has none that reads)."""
    node = checkpoint.rest.get("loops")
    for key in ("fit_loop", "epoch_progress", "current", "processed"):
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, int) and not isinstance(node, bool) and node >= 0 else 0


def check_resumable(checkpoint: ReceivedCheckpoint, path, trainer_cfg, model, untested: bool = False) -> None:
    """Refuse, in one line, a checkpoint that the trainer limits leave nothing to train from, or whose
    weights do not fit the model the config builds (Lightning would raise deep inside fit). `untested`: the
    run's own checkpoint, the run stopped before its test: with nothing left to train, it is tested."""
    step = checkpoint.global_step
    epochs_done = epochs_processed(checkpoint)
    where = f"{path} stands at step {step} ({epochs_done} epoch{'s' * (epochs_done != 1)} done)"
    max_steps, max_epochs = trainer_cfg.get("max_steps", -1), trainer_cfg.get("max_epochs")
    if untested:
        max_steps = max_epochs = None
    if max_steps is not None and 0 < max_steps <= step:
        raise UserError(f"{where}: trainer.max_steps={max_steps} is reached already; raise it above {step} to train on")
    if max_epochs is not None and 0 <= max_epochs <= epochs_done:
        raise UserError(
            f"{where}: trainer.max_epochs={max_epochs} is reached already; raise it above {epochs_done} to train on"
        )
    expected = {name: tuple(value.shape) for name, value in model.state_dict().items()}
    saved = {name: tuple(value.shape) for name, value in checkpoint.state_dict.items()}
    if saved != expected:
        differing = sorted(set(saved) ^ set(expected)) or [n for n in expected if saved[n] != expected[n]]
        raise UserError(
            f"{path}: its weights do not fit the model this config builds "
            f"(first difference: {differing[0]}); use the model settings it was trained with"
        )


def unfinished_run(argv: List[str]) -> Optional[Path]:
    """`resume=auto`: the newest run started with this command line's overrides that has not finished (no
    metrics.json) and has a readable checkpoint: in `hydra.run.dir` if given, else in outputs/<date>/<time>."""
    wanted = job_key([arg for arg in argv if "=" in arg and not arg.startswith("-")])
    given = argument(argv, "hydra.run.dir")
    found = [Path(given)] if given else [path.parents[1] for path in Path("outputs").glob(f"*/*/{SAVED_CONFIG}")]
    runs = [
        run
        for run in found
        if is_run_dir(run) and not run.is_symlink() and not (run / FINAL_METRICS).exists() and "${" not in str(run)
    ]
    for run in sorted(runs, key=lambda run: run.stat().st_mtime, reverse=True):
        try:
            if original_overrides(run) == wanted and latest_checkpoint(run) is not None:
                return run
        except ReceivedFileError:  # not a run of ours to continue
            continue
    return None


def resolve_auto(argv: List[str]) -> List[str]:
    """`resume=auto`: `resume=<that run>` when there is one to continue, else a new run; said on the console."""
    if argument(argv, "resume") != "auto":
        return argv
    rest = [arg for arg in argv if not arg.startswith("resume=")]
    if "-m" in argv or "--multirun" in argv:
        print("resume=auto: a sweep continues in its own folder (hydra.sweep.dir=<that folder>)", flush=True)
        return rest + ["resume=null"]
    run = unfinished_run(rest)
    if run is None:
        print("resume=auto: no unfinished run of this configuration with a checkpoint: starting a new run", flush=True)
        return rest + ["resume=null"]
    print(f"resume=auto: continuing the unfinished run {run}", flush=True)
    return rest + [f"resume={quoted(str(run))}"]


def continue_in_run_dir(argv: List[str]) -> List[str]:
    """`resume=<run dir>` or `ckpt_path=<run dir>/checkpoints/<file>`: make Hydra run in that
    directory again, without overwriting its saved config (train() loads that config instead)."""
    argv = resolve_auto(argv)
    resume, ckpt_path = argument(argv, "resume"), argument(argv, "ckpt_path")
    if resume in (None, "null") and ckpt_path in (None, "null"):
        return argv
    if resume not in (None, "null"):
        if not is_run_dir(Path(resume)):
            raise UserError(f"resume={resume} is not a run directory of train.py (no {SAVED_CONFIG} in it)")
        run_dir = Path(resume)
    else:
        run_dir = run_dir_of(ckpt_path) if Path(ckpt_path).is_file() else None
        if run_dir is None:  # a checkpoint from elsewhere: a new run, from this command line's config
            return argv
    if "-m" in argv or "--multirun" in argv:
        raise UserError("resume= and ckpt_path= continue one run: they do not combine with -m (multirun)")
    return argv + [f"hydra.run.dir={quoted(str(run_dir.resolve()))}", "hydra.output_subdir=null"]
