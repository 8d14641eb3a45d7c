"""mnistlab.compat.fast_loop: the same training as Lightning's own loop (weights, logs, hooks), and Lightning's
loop wherever the fast path does not apply; start-up objects frozen for the garbage collector while fitting."""

import csv
import gc

import lightning as L
import pytest
import torch
from helpers import compose, quick_overrides
from helpers.capabilities import skip_unless_cpu_trains
from torchmetrics import MeanMetric

from mnistlab.compat.fast_loop import FastEpochLoop
from mnistlab.tasks.train import build

STEP_HOOKS = (
    "on_train_batch_start",
    "on_before_zero_grad",
    "on_before_backward",
    "on_after_backward",
    "on_before_optimizer_step",
    "on_train_batch_end",
)


def connector_metrics(trainer) -> tuple:
    """The logger connector's progress-bar, callback and logged metrics as they stand (not through the
    trainer's properties, which would refresh them)."""
    connector = trainer._logger_connector
    return tuple(
        {name: float(value) for name, value in metrics.items()}
        for metrics in (connector._progress_bar_metrics, connector._callback_metrics, connector._logged_metrics)
    )


class HookRecorder(L.Callback):
    """Every per-step hook a callback can receive, with the step counters, the loss Lightning hands over and
    the metrics that the previous step left; logs a value of its own every third step."""

    def __init__(self):
        self.calls = []

    def record(self, hook, trainer, *extra):
        self.calls.append((hook, trainer.global_step, trainer.fit_loop.epoch_loop.batch_idx, *extra))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.record("on_train_batch_start", trainer, batch_idx, batch[0].shape[0], connector_metrics(trainer))

    def on_before_zero_grad(self, trainer, pl_module, optimizer):
        self.record("on_before_zero_grad", trainer, type(optimizer).__name__)

    def on_before_backward(self, trainer, pl_module, loss):
        self.record("on_before_backward", trainer, loss.item())

    def on_after_backward(self, trainer, pl_module):
        grads = [p.grad for p in pl_module.parameters() if p.requires_grad]
        self.record("on_after_backward", trainer, all(g is not None for g in grads))

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.record("on_before_optimizer_step", trainer, type(optimizer).__name__)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.record("on_train_batch_end", trainer, batch_idx, outputs["loss"].item(), outputs["loss"].requires_grad)
        if batch_idx % 3 == 1:
            pl_module.log("probe/batch_idx", float(batch_idx), on_step=True, on_epoch=False, prog_bar=True)


class MetricProbe(L.Callback):
    """A torchmetrics object updated every step and logged every fourth."""

    def setup(self, trainer, pl_module, stage):
        pl_module.probe_mean = MeanMetric().to(pl_module.device)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        pl_module.probe_mean(outputs["loss"])
        if batch_idx % 4 == 0:
            pl_module.log(
                "probe/mean",
                pl_module.probe_mean,
                on_step=True,
                on_epoch=False,
                prog_bar=True,
                metric_attribute="probe_mean",
            )


def fit(overrides: list, run_dir, callbacks: tuple = ()) -> tuple:
    datamodule, model, trainer = build(compose(overrides + [f"paths.output_dir={run_dir}"]))
    recorder = HookRecorder()
    trainer.callbacks.extend([recorder, *(callback() for callback in callbacks)])
    trainer.fit(model, datamodule=datamodule)
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    return model, trainer, recorder.calls, rows


def same_training(mnist_dir, tmp_path, extra: list, callbacks: tuple = ()) -> tuple:
    """Fits the same config with fast_loop=true and false; asserts both trained alike; returns the trainers."""
    base = [o for o in quick_overrides(mnist_dir, tmp_path) if not o.startswith("paths.")]
    base += ["trainer.max_epochs=2", "trainer.log_every_n_steps=3", "seed=5"] + extra
    fast = fit(base + ["fast_loop=true"], tmp_path / "fast", callbacks)
    slow = fit(base + ["fast_loop=false"], tmp_path / "slow", callbacks)
    for (name, a), b in zip(fast[0].state_dict().items(), slow[0].state_dict().values()):
        assert torch.equal(a, b), name
    assert fast[1].global_step == slow[1].global_step == 32  # 2 epochs of 16 batches
    assert fast[2] == slow[2]  # the same hooks, in the same order, with the same counters, losses and metrics
    assert fast[3] == slow[3]  # metrics.csv, every logged value at every step
    assert fast[1].fit_loop.epoch_loop.state_dict() == slow[1].fit_loop.epoch_loop.state_dict()
    saved = [sorted(p.name for p in (tmp_path / run / "checkpoints").iterdir()) for run in ("fast", "slow")]
    assert saved[0] == saved[1] and saved[0]
    return fast[1], slow[1], fast[2]


def test_fast_loop_trains_exactly_as_lightnings_loop(mnist_dir, tmp_path):
    """MLP with dropout, L2, EMA (an optimizer step hook) and a per-step schedule."""
    fast, slow, calls = same_training(
        mnist_dir,
        tmp_path,
        [
            "model=mlp",
            "model.net.hidden=[32]",
            "model.net.dropout=0.2",
            "model.l2=0.001",
            "ema.enabled=true",
            "optimizer=sgd",
            "scheduler=exponential",
            "trainer.val_check_interval=5",
            "callbacks.checkpoint.every_n_train_steps=4",
        ],
    )  # validation and step checkpoints in mid-epoch too
    assert isinstance(fast.fit_loop.epoch_loop, FastEpochLoop) and fast.fit_loop.epoch_loop.fast
    assert not isinstance(slow.fit_loop.epoch_loop, FastEpochLoop)
    assert [call[0] for call in calls[:6]] == list(STEP_HOOKS)
    assert len(calls) == 6 * 32


@pytest.mark.parametrize(
    "extra, steps",
    [
        (["+trainer.accumulate_grad_batches=2"], 8),
        (["+trainer.gradient_clip_val=0.5"], 16),
        (["trainer.profiler=simple"], 16),
    ],
    ids=["accumulate", "clip", "profiler"],
)
def test_steps_the_fast_path_does_not_cover_go_through_lightnings_own(mnist_dir, tmp_path, extra, steps):
    overrides = quick_overrides(mnist_dir, tmp_path) + ["model=softmax", "fast_loop=true"] + extra
    datamodule, model, trainer = build(compose(overrides))
    trainer.fit(model, datamodule=datamodule)
    loop = trainer.fit_loop.epoch_loop
    assert isinstance(loop, FastEpochLoop) and not loop.fast
    assert trainer.global_step == steps  # 16 batches


def test_start_up_objects_are_frozen_only_while_fitting(mnist_dir, tmp_path):
    seen = []

    class FreezeProbe(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append(gc.get_freeze_count())

    datamodule, model, trainer = build(compose(quick_overrides(mnist_dir, tmp_path) + ["model=softmax"]))
    trainer.callbacks.append(FreezeProbe())
    assert gc.get_freeze_count() == 0
    trainer.fit(model, datamodule=datamodule)
    assert seen and min(seen) > 10_000  # torch, Lightning, Hydra and the config are out of the collector's reach
    assert gc.get_freeze_count() == 0


def test_fast_loop_trains_exactly_as_lightnings_loop_in_bf16(mnist_dir, tmp_path):
    """The autocast context and the precision plugin's step, with an LSTM; a torchmetrics object logged too."""
    skip_unless_cpu_trains("bf16-mixed", torch.nn.LSTM)
    fast, _, calls = same_training(
        mnist_dir,
        tmp_path,
        ["model=lstm", "model.net.hidden_size=16", "trainer.precision=bf16-mixed"],
        callbacks=(MetricProbe,),
    )
    assert fast.fit_loop.epoch_loop.fast
    assert any("probe/mean" in call[-1][0] for call in calls if call[0] == "on_train_batch_start")


def test_an_unchecked_lightning_version_keeps_lightnings_own_loop_with_one_warning(monkeypatch, caplog):
    from mnistlab.compat.fast_loop import install

    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, max_steps=1)
    monkeypatch.setattr(L, "__version__", "9.9.9")
    with caplog.at_level("WARNING", logger="mnistlab.compat.fast_loop"):
        assert not install(trainer)
    assert not isinstance(trainer.fit_loop.epoch_loop, FastEpochLoop)
    warnings = [r.getMessage() for r in caplog.records if r.name == "mnistlab.compat.fast_loop"]
    assert len(warnings) == 1 and "Lightning 9.9.9" in warnings[0] and "\n" not in warnings[0], warnings
    monkeypatch.undo()
    assert install(trainer) and isinstance(trainer.fit_loop.epoch_loop, FastEpochLoop)
