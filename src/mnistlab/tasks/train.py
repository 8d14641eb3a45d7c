"""The training task behind train.py: fit, test the best checkpoint, print a summary."""

import json
import logging
import os
import signal
import sys
import warnings
from pathlib import Path

import lightning as L
import torch
import torch.distributed
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ProgressBar
from omegaconf import DictConfig

from mnistlab.callbacks.interrupt import PREEMPTION, Interrupted, SaveOnInterrupt
from mnistlab.callbacks.predictions import RecordPredictions
from mnistlab.callbacks.progress import drop_advertising
from mnistlab.callbacks.validate_at_stop import ValidateAtStop
from mnistlab.compat.fast_loop import install as install_fast_loop
from mnistlab.errors import CheckpointError, UserError
from mnistlab.perf.garbage import collections_paused
from mnistlab.perf.speedups import FreezeStartupObjects, apply_speedups, cheap_cuda_checks
from mnistlab.received.checkpoint import lightning_state, read_checkpoint
from mnistlab.runs.checkpoint_io import ValidatedCheckpointIO
from mnistlab.runs.checkpoints import global_step
from mnistlab.runs.ddp import refuse_relaunch_in_sweep
from mnistlab.runs.disk_full import disk_full_error
from mnistlab.runs.distributed import is_peer_failure, join_submitit_tasks, quiet_other_ranks
from mnistlab.runs.environment import write_environment
from mnistlab.runs.memory import largest_parts, peak_resident_mib, resident_mib
from mnistlab.runs.preemption import requeue
from mnistlab.runs.report import write_report
from mnistlab.runs.resume import check_resumable, is_own_checkpoint, resumed_config
from mnistlab.runs.run_dir import FINAL_METRICS
from mnistlab.settings.schema import validate
from mnistlab.sweeps.parallel import default_threads
from mnistlab.training.precision import check_precision
from mnistlab.training.running_sums import ResumeState

log = logging.getLogger(__name__)


def build_all(cfg: DictConfig, target_key: str) -> list:
    """Instantiate each entry of a dict-of-configs group (callbacks, logger); null entries are off."""

    group = cfg.get(target_key) or {}
    return [instantiate(entry) for entry in group.values() if entry and "_target_" in entry]


def stopped(signum: int, what: str, cfg: DictConfig) -> None:
    """Ctrl-C or SIGTERM: say how to continue; SLURM's warning before the time limit: requeue the job. Exit
    128 + signal number as a shell would."""

    run_dir = os.path.relpath(cfg.paths.output_dir)
    then = requeue(run_dir) if signum in PREEMPTION else f"continue with: python train.py resume={run_dir}"
    print(f"\nstopped by {signal.Signals(signum).name}: {what}\n{then}", file=sys.stderr)
    raise SystemExit(128 + signum)


def build_classifier(cfg: DictConfig):
    """The LightningModule of cfg.model (conf/model/<name>.yaml), given this command line's trusted_modules."""

    return instantiate(cfg.model, _convert_="all", trusted_modules=list(cfg.get("trusted_modules") or []))


def build_datamodule(cfg: DictConfig, **overrides):
    """The LightningDataModule of cfg.data (conf/data/<name>.yaml), with `overrides` of its arguments."""

    return instantiate(cfg.data, _convert_="all", **overrides)


def build(cfg: DictConfig) -> tuple:
    """The (datamodule, model, trainer) that train() fits, with threads and seed set: the benchmark reuses it."""
    warnings.filterwarnings("ignore", message=".*treespec.*")  # Lightning's own, on torch >= 2.9
    warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")  # the EMA copy, on purpose

    drop_advertising()  # Lightning's "try installing ..." tips
    cheap_cuda_checks()
    threads = cfg.threads if cfg.threads is not None else default_threads()  # parallel jobs share the cores
    if threads is not None:
        torch.set_num_threads(threads)
    if cfg.seed is not None:  # seed 0 is a seed too
        L.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()  # the missing-data message comes before any model is built

    model = build_classifier(cfg)
    trusted = list(cfg.get("trusted_modules") or [])
    prepared = {}  # what Lightning's fit restores from, read and sanitised at the boundary
    if cfg.ckpt_path is not None:  # refuses an unsafe, spent or unfitting file with a clear message before Lightning
        checkpoint = read_checkpoint(cfg.ckpt_path, trusted, cfg.get("max_parameters"))
        own_run = Path(cfg.paths.output_dir) if is_own_checkpoint(cfg) else None  # else no callback state
        untested = own_run is not None and not (own_run / FINAL_METRICS).exists()  # e.g. killed during its test
        check_resumable(checkpoint, cfg.ckpt_path, cfg.trainer, model, untested)
        prepared[str(cfg.ckpt_path)] = lightning_state(checkpoint, own_run)
        log.info("resuming from %s", cfg.ckpt_path)
    log.info(f"torch CPU threads: {torch.get_num_threads()}")  # after the checks: a refused resume adds no line
    loggers = build_all(cfg, "logger")
    for logger in loggers:  # ours continue a resumed run's logs (mnistlab.callbacks.csv_logger, trackers)
        if cfg.ckpt_path is not None and hasattr(logger, "resume_step"):
            logger.resume_step = checkpoint.global_step
    callbacks = build_all(cfg, "callbacks") + [
        ResumeState(),
        SaveOnInterrupt(Path(cfg.paths.output_dir, "checkpoints")),
        ValidateAtStop(),
        FreezeStartupObjects(),
    ]
    if cfg.trainer.get("enable_progress_bar") is False:  # +trainer.enable_progress_bar=false also drops ours
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    check_precision(model, cfg.trainer)  # e.g. bf16 and an LSTM on a CPU without AVX512-BF16: one line
    checkpoint_io = ValidatedCheckpointIO(cfg.paths.output_dir, prepared, trusted, cfg.get("max_parameters"))
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers, plugins=[checkpoint_io])
    apply_speedups(model, compile=cfg.compile)
    if cfg.get("fast_loop", True):  # a run saved before the option resumes with it too
        install_fast_loop(trainer)
    return datamodule, model, trainer


def train(cfg: DictConfig) -> dict:
    """Train per `cfg` (conf/train.yaml); returns the final metrics as floats."""
    libraries = resident_mib()  # before anything of the run is built
    join_submitit_tasks()
    quiet_other_ranks()
    cfg = resumed_config(cfg)  # resume=<run dir>: that run's saved config and newest checkpoint
    validate(cfg)  # every range check, before any data or model is built
    with collections_paused():  # building: objects that all live on
        datamodule, model, trainer = build(cfg)
    refuse_relaunch_in_sweep(trainer)
    if trainer.is_global_zero:  # env.json, requirements.txt: before fitting, so that a crashed run has them
        write_environment(Path(cfg.paths.output_dir))
    stopper = next(c for c in trainer.callbacks if isinstance(c, SaveOnInterrupt))
    prepared = getattr(trainer.strategy.checkpoint_io, "prepared", {})  # the resumed state (ValidatedCheckpointIO)
    start_step = max((state["global_step"] for state in prepared.values()), default=0)
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=True)
    except Interrupted as stop:
        stopped(stop.signum, f"checkpoint of step {stop.step} saved in {os.path.relpath(stop.path)}", cfg)
    except Exception as err:
        full = disk_full_error(err, cfg.paths.output_dir, trainer.global_step)
        if full is not None:  # before the checks below: a full disk is never the restored checkpoint's fault
            raise full from None

        if cfg.ckpt_path is None or isinstance(err, UserError) or is_peer_failure(err):
            raise
        if trainer.global_step > start_step:  # the run trained on: not the restored state's fault
            raise
        # Failing before a step of its own, the run failed on the state it restored: the file's fault, in one line
        raise CheckpointError(
            f"{cfg.ckpt_path}: its saved training state cannot be restored ({type(err).__name__}: "
            f"{(str(err).strip().splitlines() or [''])[0][:160]})"
        ) from None
    if stopper.signum is not None:  # the signal came after the last training batch
        stopped(stopper.signum, "training had finished; the test was skipped", cfg)
    if trainer.interrupted:
        log.warning("training was interrupted: testing the checkpoints saved so far")

    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_path if checkpoint is not None and checkpoint.best_model_path else None
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
    if best and checkpoint.best_model_score is not None:  # None: a checkpoint callback that monitors nothing
        metrics["val/acc"] = float(checkpoint.best_model_score)  # the tested checkpoint's
    recorder = RecordPredictions()  # the test's own predictions, for the report
    if cfg.get("report", True):
        trainer.callbacks.append(recorder)
    trainer.test(model, datamodule=datamodule, ckpt_path=best, verbose=False, weights_only=True)
    metrics.update({name: float(value) for name, value in trainer.callback_metrics.items()})
    metrics["step"] = trainer.global_step
    metrics["model/parameters"] = sum(p.numel() for p in model.net.parameters() if p.requires_grad)  # a trade-off axis
    # not a metric: it differs between a run resumed and one never stopped (report.md shows it)
    # the kernel's memory counters are approximate (per-CPU batches): its peak, read now, can fall a few pages
    # short of the resident size read at the start
    peak = max(peak_resident_mib(), libraries)
    memory = {"peak resident": peak, **largest_parts(libraries, datamodule, model, trainer.optimizers)}

    if trainer.is_global_zero:
        run_dir = os.path.relpath(cfg.paths.output_dir)
        tested = os.path.relpath(best) if best else "the final weights"
        print(
            f"\ntest/acc {metrics['test/acc']:.4f}  test/loss {metrics['test/loss']:.4f}  "
            f"(val/acc {metrics.get('val/acc', float('nan')):.4f}; tested {tested})"
        )
        print(f"run saved in {run_dir}")
        Path(cfg.paths.output_dir, "metrics.json").write_text(json.dumps(metrics, indent=2))
        if recorder.predictions is not None:
            tested_step = global_step(Path(best)) if best else trainer.global_step
            write_report(Path(cfg.paths.output_dir), recorder.predictions, metrics, tested_step, memory)
    if (
        trainer.world_size > 1
    ):  # ranks leave together, their process group closed: gloo can abort a process exiting with it open
        trainer.strategy.barrier()
        torch.distributed.destroy_process_group()
    return metrics
