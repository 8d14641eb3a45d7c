"""Lightning's training-epoch loop with a shorter path through each ordinary training step.

Lightning's automatic optimization dispatches ~12 hooks a step to every callback and to the module
(each with a profiler label, also where nothing overrides the hook), and wraps the step in a
closure, plugin layers, result objects and an argument-inspecting kwargs builder. `FastEpochLoop.advance`
does the same work in the same order, with the same hooks, progress counters and logging, but calls
a hook only on the callbacks and module that override it, and rebuilds the logged metrics only after a
log call: most of the framework's added time per step over a hand-written loop goes (docs/performance.md
has the measurements). It pays where that added time is a large part of a step: small networks on a CPU.
Steps it does not cover (gradient accumulation or clipping, manual optimization, several optimizers,
a module overriding a step hook, a 16-bit scaler, distributed or profiled runs, the first step
after a mid-epoch restart) go through Lightning's own `advance`; `fast_loop=false` always does.

It reaches into Lightning's private loop, connector and result classes (each use says why), so it is
installed only on the Lightning versions it was checked against (mnistlab.compat.lightning.
CHECKED_LIGHTNING_VERSIONS); on another, Lightning's own loop runs and one warning line says so.
"""

import logging
from collections.abc import Mapping
from typing import Any, Optional

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loops.fetchers import _DataLoaderIterDataFetcher  # a training_step taking the iterator
from lightning.pytorch.loops.training_epoch_loop import _TrainingEpochLoop  # the loop this one replaces
from lightning.pytorch.plugins.precision import MixedPrecision, Precision
from lightning.pytorch.profilers import PassThroughProfiler
from lightning.pytorch.strategies import SingleDeviceStrategy
from lightning.pytorch.trainer.connectors.logger_connector.result import _ResultCollection  # what self.log fills
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.model_helpers import is_overridden
from lightning.pytorch.utilities.signature_utils import is_param_in_hook_signature

from mnistlab.compat.lightning import CHECKED_LIGHTNING_VERSIONS, unchecked_lightning_version
from mnistlab.perf.profiler import NoProfiler

log = logging.getLogger(__name__)

CALLBACK_HOOKS = (
    "on_train_batch_start",
    "on_before_zero_grad",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_train_batch_end",
)
# LightningModule hooks whose override changes what a step does: a module overriding one takes Lightning's path.
STEP_HOOKS = (
    "on_train_batch_start",
    "optimizer_step",
    "optimizer_zero_grad",
    "backward",
    "configure_gradient_clipping",
    "lr_scheduler_step",
)


def split_output(output: Any) -> tuple:
    """(loss, extra outputs) of a training_step, checked as Lightning's ClosureResult does; without its
    copy of the loss (for a scaler, not on this path) and its division by the accumulation (1 here)."""
    if isinstance(output, Mapping):
        if output.get("loss") is None:
            raise MisconfigurationException(
                "In automatic_optimization, when `training_step` returns a dict, the 'loss' key needs to be present"
            )
        return output["loss"], {k: v for k, v in output.items() if k != "loss"}
    if output is None or isinstance(output, torch.Tensor):
        return output, {}
    raise MisconfigurationException(
        "In automatic optimization, `training_step` must return a Tensor, a dict, "
        "or None (where the step will be skipped)."
    )


def set_running_hook(module: L.LightningModule, hook: Optional[str]) -> Optional[str]:
    """Records `hook` as the one running (what self.log checks), returning the one before. A string or None is
    never a parameter, buffer or submodule: object.__setattr__ skips nn.Module.__setattr__'s checks for them, which
    cost more than a small network's step can spare when made several times a step."""
    previous = module._current_fx_name
    object.__setattr__(module, "_current_fx_name", hook)
    return previous


def saves_in_mid_epoch(callback: L.Callback) -> bool:
    """False for a ModelCheckpoint whose on_train_batch_end can only return (no every_n_train_steps,
    no train_time_interval): the loop leaves it out of that hook."""
    return not (
        type(callback) is ModelCheckpoint
        and callback._every_n_train_steps < 1  # on_train_batch_end's tests; ModelCheckpoint keeps them private
        and callback._train_time_interval is None
    )


class CountingResults(_ResultCollection):
    """Lightning's training results, counting the values logged into them (self.log, from the module or a callback)."""

    logged = 0

    @torch.compiler.disable  # as Lightning's own log
    def log(self, *args, **kwargs) -> None:
        self.logged += 1
        super().log(*args, **kwargs)


class FastEpochLoop(_TrainingEpochLoop):
    """Drop-in for trainer.fit_loop.epoch_loop (see `install`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._results = CountingResults(training=True)  # the loop's result collection, which self.log fills

    def on_run_start(self, data_fetcher) -> None:
        super().on_run_start(data_fetcher)
        trainer = self.trainer
        module = trainer.lightning_module
        self.callbacks_with = {
            hook: [
                cb
                for cb in trainer.callbacks
                if is_overridden(hook, cb) and (hook != "on_train_batch_end" or saves_in_mid_epoch(cb))
            ]
            for hook in CALLBACK_HOOKS
        }
        self.logged_seen = -1  # the epoch's first step refreshes the logger connector's metrics
        self.module_with = {hook: is_overridden(hook, module) for hook in CALLBACK_HOOKS}
        self.passes_batch_idx = is_param_in_hook_signature(module.training_step, "batch_idx", min_args=2)
        hooks = trainer._data_connector._datahook_selector  # whose batch-transfer hooks the trainer calls
        moves_batches = any(
            hooks.get_instance(hook) is not module or is_overridden(hook, module)
            for hook in ("on_before_batch_transfer", "transfer_batch_to_device")
        )
        # A batch already on the device (mnistlab's TensorBatches) needs only on_after_batch_transfer.
        self.after_transfer = None if moves_batches else hooks.get_instance("on_after_batch_transfer")
        self.device = trainer.strategy.root_device
        precision = trainer.precision_plugin
        self.fast = (
            module.automatic_optimization
            and len(trainer.optimizers) == 1
            and trainer.accumulate_grad_batches == 1
            and trainer.gradient_clip_val is None
            and type(trainer.strategy) is SingleDeviceStrategy
            and (type(precision) is Precision or (type(precision) is MixedPrecision and precision.scaler is None))
            and isinstance(trainer.profiler, (NoProfiler, PassThroughProfiler))
            and not isinstance(data_fetcher, _DataLoaderIterDataFetcher)
            and not any(is_overridden(hook, module) for hook in STEP_HOOKS)
        )

    def call_hook(self, hook: str, *args: Any) -> None:
        """Lightning's callback-then-module dispatch, skipping those that do not override `hook`."""
        callbacks, on_module = self.callbacks_with[hook], self.module_with[hook]
        if not callbacks and not on_module:
            return
        trainer = self.trainer
        module = trainer.lightning_module
        previous = set_running_hook(module, hook)
        for callback in callbacks:
            getattr(callback, hook)(trainer, module, *args)
        if on_module:
            getattr(module, hook)(*args)
        set_running_hook(module, previous)

    def advance(self, data_fetcher) -> None:
        if not self.fast or self.restarting:
            return super().advance(data_fetcher)
        trainer = self.trainer
        module = trainer.lightning_module

        batch, _, __ = next(data_fetcher)
        batch_idx = self.batch_idx + 1
        self.batch_progress.is_last_batch = data_fetcher.done
        batch = self.to_device(batch)
        self.batch_progress.increment_ready()
        trainer._logger_connector.on_batch_start(batch)  # the logging bookkeeping of Lightning's own step

        self.call_hook("on_train_batch_start", batch, batch_idx)
        self.batch_progress.increment_started()
        args = (batch, batch_idx) if self.passes_batch_idx else (batch,)
        loss, extra = self.optimizer_step(module, args, batch_idx)
        self.batch_progress.increment_processed()

        self.step_schedulers(batch_idx)
        if self._num_ready_batches_reached():  # Lightning's own end-of-epoch test, as in its advance
            self.update_lr_schedulers("epoch", update_plateau_schedulers=False)

        outputs = {} if loss is None else {"loss": loss.detach(), **extra}
        self.call_hook("on_train_batch_end", outputs, batch, batch_idx)
        self.refresh_metrics()
        self.batch_progress.increment_completed()
        trainer._logger_connector.update_train_step_metrics()  # as Lightning's advance ends

    def refresh_metrics(self) -> None:
        """The logger connector's on_batch_end, which rebuilds the progress-bar, callback and logged metrics from
        the results' step values: only when something was logged since it last ran, since those values change
        only when logged (a torchmetrics object's too). Otherwise it would set the same values again every
        step, and on a GPU its .item() for the progress bar would wait for the step's kernels."""
        results = self._results
        if results.logged != self.logged_seen:
            self.trainer._logger_connector.on_batch_end()  # the connector's own rebuild of the metrics
            self.logged_seen = results.logged
        else:  # the rest of on_batch_end
            results.batch = None
            results.batch_size = None

    def to_device(self, batch: Any) -> Any:
        """Lightning's batch preparation; for a tuple of tensors already on the device, only its last hook."""
        trainer = self.trainer
        if (
            self.after_transfer is not None
            and type(batch) is tuple
            and all(isinstance(t, torch.Tensor) and t.device == self.device for t in batch)
        ):
            return self.after_transfer.on_after_batch_transfer(batch, 0)
        batch = trainer.precision_plugin.convert_input(batch)
        batch = trainer.lightning_module._on_before_batch_transfer(batch, dataloader_idx=0)  # as Lightning's fetcher
        return trainer.strategy.batch_to_device(batch, dataloader_idx=0)

    def optimizer_step(self, module: L.LightningModule, args: tuple, batch_idx: int) -> tuple:
        """The optimizer's step with a closure (training_step, zero_grad, backward), the hooks of Lightning's
        `_AutomaticOptimization` and its precision plugin's step, without their layers of calls."""
        trainer = self.trainer
        progress = self.automatic_optimization.optim_progress.optimizer
        optimizer = trainer.optimizers[0]
        outputs = []

        def closure() -> Optional[torch.Tensor]:
            previous = set_running_hook(module, "training_step")  # as the strategy's hook call
            loss, extra = split_output(trainer.strategy.training_step(*args))  # inside the plugin's autocast
            set_running_hook(module, previous)
            outputs.append((loss, extra))
            progress.zero_grad.increment_ready()
            self.call_hook("on_before_zero_grad", optimizer)
            progress.zero_grad.increment_started()
            optimizer.zero_grad()  # LightningModule.optimizer_zero_grad's default
            progress.zero_grad.increment_completed()
            if loss is not None:
                self.call_hook("on_before_backward", loss)
                loss.backward()  # LightningModule.backward's default
                self.call_hook("on_after_backward")
            self.call_hook("on_before_optimizer_step", optimizer)  # no clipping on this path: nothing else
            return None if loss is None else loss.detach()

        progress.step.increment_ready()
        optimizer.step(closure=closure)  # LightningModule.optimizer_step's default, less the wrappers
        progress.step.increment_completed()
        return outputs[-1]

    def step_schedulers(self, batch_idx: int) -> None:
        """Lightning's per-step scheduler update (`_update_learning_rates("step")`) for non-plateau schedulers."""
        for config in self.trainer.lr_scheduler_configs:
            if config.interval == "step" and not config.reduce_on_plateau and (batch_idx + 1) % config.frequency == 0:
                self.scheduler_progress.increment_ready()
                config.scheduler.step()  # LightningModule.lr_scheduler_step's default
                self.scheduler_progress.increment_completed()


def install(trainer: L.Trainer) -> bool:
    """Replace the trainer's training-epoch loop by a FastEpochLoop (before fit); on a Lightning version it was
    not checked against, leave Lightning's own, with a warning. Whether it was installed."""
    version = unchecked_lightning_version()
    if version is not None:
        log.warning(
            f"fast_loop: Lightning {version} is not one mnistlab's fast loop was checked against "
            f"({', '.join(CHECKED_LIGHTNING_VERSIONS)}): Lightning's own training loop runs instead "
            "(fast_loop=false hides this line; tests/test_internals.py says how to add a version)"
        )
        return False
    old = trainer.fit_loop.epoch_loop
    trainer.fit_loop.epoch_loop = FastEpochLoop(trainer, min_steps=old.min_steps, max_steps=old.max_steps)
    return True
