"""The speed features: training metrics summed on the device, the throttled progress bar, the free profiler,
threads, channels_last, torch.compile, bf16-mixed, evaluation under inference mode, and garbage collections kept
off start-up's objects."""

import csv
import gc
import os
import shutil

import lightning as L
import pytest
import torch
from helpers import compose, quick_overrides
from helpers.capabilities import skip_unless_cpu_trains
from lightning.pytorch.profilers import SimpleProfiler

from mnistlab.callbacks.progress import ProgressBar
from mnistlab.cli import run
from mnistlab.perf.garbage import collections_paused
from mnistlab.perf.profiler import NoProfiler
from mnistlab.perf.speedups import apply_speedups
from mnistlab.tasks.train import build, build_classifier, train

SMALL_CNN = ["model=cnn", "model.net.channels=[4,8]", "model.net.fc_size=32"]
SMALL_LSTM = ["model=lstm", "model.net.hidden_size=16"]


def metric_rows(run_dir, name):
    with open(run_dir / "metrics.csv") as f:
        return [(int(row["step"]), float(row[name])) for row in csv.DictReader(f) if row.get(name)]


def test_epoch_metrics_cover_every_step_whatever_the_logging_interval(mnist_dir, tmp_path):
    """Steps are logged every log_every_n_steps; the epoch means still count every batch."""
    runs = {}
    for every in (1, 4):
        run_dir = tmp_path / str(every)
        overrides = quick_overrides(mnist_dir, run_dir) + [
            "model=softmax",
            "seed=3",
            "trainer.max_epochs=2",
            f"trainer.log_every_n_steps={every}",
        ]
        runs[every] = train(compose(overrides))
        assert [step for step, _ in metric_rows(run_dir, "train/loss_step")] == [
            step for step in range(32) if (step + 1) % every == 0
        ]  # 16 batches an epoch
    for key in ("train/loss_epoch", "train/acc_epoch", "train/loss", "train/acc", "test/acc"):
        assert runs[1][key] == runs[4][key], key

    # the epoch values are the batch-size-weighted means of every step's values (15 batches of 32, one of 20)
    weights = [32] * 15 + [20]
    for name in ("loss", "acc"):
        steps = [value for _, value in metric_rows(tmp_path / "1", f"train/{name}_step")][:16]
        first_epoch = metric_rows(tmp_path / "1", f"train/{name}_epoch")[0][1]
        assert first_epoch == pytest.approx(sum(w * v for w, v in zip(weights, steps)) / 500, rel=1e-5)


def test_progress_bar_redraws_at_most_ten_times_a_second_and_can_be_turned_off(mnist_dir, tmp_path, monkeypatch):
    overrides = [o for o in quick_overrides(mnist_dir, tmp_path) if "enable_progress_bar" not in o]
    _, _, trainer = build(compose(overrides))
    bar = trainer.progress_bar_callback
    assert isinstance(bar, ProgressBar) and bar.refresh_seconds == 0.1
    clock = iter([100.0, 100.05, 100.09, 100.11, 100.12, 100.30])
    monkeypatch.setattr("mnistlab.callbacks.progress.time.monotonic", lambda: next(clock))
    # steps 1-6 of 50 at those times: drawn at once, not within 0.1 s of that (unless last), then again
    assert [bar._should_update(n, 50 if n != 5 else 5) for n in range(1, 7)] == [True, False, False, True, True, True]
    _, _, trainer = build(compose(overrides + ["+trainer.enable_progress_bar=false"]))
    assert trainer.progress_bar_callback is None


def test_profiler_is_off_by_default_and_can_be_chosen(mnist_dir, tmp_path):
    _, _, trainer = build(compose(quick_overrides(mnist_dir, tmp_path)))
    assert isinstance(trainer.profiler, NoProfiler)
    with trainer.profiler.profile("anything") as name:
        assert name == "anything"
    _, _, trainer = build(compose(quick_overrides(mnist_dir, tmp_path) + ["trainer.profiler=simple"]))
    assert isinstance(trainer.profiler, SimpleProfiler)


def test_threads_sets_torch_threads(mnist_dir, tmp_path):
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            build(compose(quick_overrides(mnist_dir, tmp_path) + [f"threads={threads}"]))
            assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)


def test_channels_last_only_for_conv_nets(tmp_path):
    cnn = build_classifier(compose([f"paths.output_dir={tmp_path}"] + SMALL_CNN)).eval()  # no dropout
    images = torch.rand(3, 1, 28, 28)
    expected = cnn(images)
    assert all(p.is_contiguous() for p in cnn.parameters())
    apply_speedups(cnn)
    conv_weights = [p for p in cnn.parameters() if p.ndim == 4]
    assert len(conv_weights) == 2 and all(w.is_contiguous(memory_format=torch.channels_last) for w in conv_weights)
    assert not conv_weights[1].is_contiguous()  # (the first has one input channel: both layouts are the same)
    torch.testing.assert_close(cnn(images), expected, rtol=1e-4, atol=1e-5)

    mlp = build_classifier(compose([f"paths.output_dir={tmp_path}", "model=mlp"]))
    apply_speedups(mlp)
    assert all(p.is_contiguous() for p in mlp.parameters())


def test_compile_keeps_the_checkpoint_names(tmp_path):
    model = build_classifier(compose([f"paths.output_dir={tmp_path}", "model=mlp", "ema.enabled=true"]))
    names = list(model.state_dict())
    apply_speedups(model, compile=True)
    assert model.net._compiled_call_impl is not None and model.ema.net._compiled_call_impl is not None
    assert list(model.state_dict()) == names


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("g++") is None and shutil.which("clang++") is None, reason="torch.compile on CPU needs a C++ compiler"
)
def test_compiled_training_learns(mnist_dir, tmp_path):
    metrics = train(
        compose(
            quick_overrides(mnist_dir, tmp_path)
            + ["model=mlp", "model.net.hidden=[32]", "optimizer.lr=1e-2", "compile=true", "trainer.max_epochs=3"]
        )
    )
    assert metrics["test/acc"] > 0.5
    assert (
        "net.1.layers.1.weight" in torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    )


class InferenceModeProbe(L.Callback):
    def __init__(self):
        self.seen = []

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self.seen.append(("val", pl_module.evaluated_in_inference_mode))

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self.seen.append(("test", pl_module.evaluated_in_inference_mode))


@pytest.mark.parametrize("model", [SMALL_CNN, SMALL_LSTM], ids=["cnn", "lstm"])
def test_bf16_mixed_trains_and_evaluates_under_inference_mode(model, mnist_dir, tmp_path):
    skip_unless_cpu_trains("bf16-mixed", torch.nn.LSTM if model is SMALL_LSTM else torch.nn.Conv2d, torch.nn.Linear)
    cfg = compose(
        quick_overrides(mnist_dir, tmp_path)
        + model
        + ["trainer.precision=bf16-mixed", "optimizer.lr=1e-2", "trainer.max_epochs=2"]
    )
    datamodule, classifier, trainer = build(cfg)
    evaluate = classifier.evaluate

    def recording_evaluate(*args):
        classifier.evaluated_in_inference_mode = torch.is_inference_mode_enabled()
        evaluate(*args)

    classifier.evaluate = recording_evaluate
    probe = InferenceModeProbe()
    trainer.callbacks.append(probe)
    trainer.fit(classifier, datamodule=datamodule)
    train_loss = float(trainer.callback_metrics["train/loss_epoch"])
    trainer.test(classifier, datamodule=datamodule, verbose=False)
    assert {stage for stage, _ in probe.seen} == {"val", "test"} and all(inference for _, inference in probe.seen)
    assert train_loss < 2.2  # below chance level (ln 10 = 2.30): it learns under autocast
    assert torch.isfinite(trainer.callback_metrics["test/loss"])


@pytest.mark.parametrize("gpu", [False, True])
def test_cheap_cuda_checks_drop_the_nvml_check_only_without_a_gpu(gpu, monkeypatch):
    from mnistlab.perf.speedups import cheap_cuda_checks

    monkeypatch.setenv("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # as `import lightning` sets it
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    cheap_cuda_checks()
    assert ("PYTORCH_NVML_BASED_CUDA_CHECK" in os.environ) == gpu


@pytest.mark.filterwarnings("ignore:The dirpath has changed")  # resumed into a new run directory, on purpose
def test_epoch_sums_group_the_same_steps_in_a_run_resumed_in_mid_epoch(mnist_dir, tmp_path, monkeypatch):
    """The steps' losses are added up every SUM_EVERY steps; a mid-epoch checkpoint keeps those not yet added."""
    import mnistlab.training.epoch_sums

    monkeypatch.setattr(mnistlab.training.epoch_sums, "SUM_EVERY", 3)
    base = [o for o in quick_overrides(mnist_dir, tmp_path) if not o.startswith("paths.")]
    base += ["model=softmax", "seed=3", "callbacks.checkpoint.every_n_train_steps=5", "callbacks.recent.save_top_k=-1"]
    epoch_metrics = ("train/loss_epoch", "train/acc_epoch")
    runs = {}
    for name, ckpt in (("full", None), ("resumed", tmp_path / "full" / "checkpoints" / "step000005.ckpt")):
        datamodule, model, trainer = build(compose(base + [f"paths.output_dir={tmp_path / name}"]))
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt, weights_only=True)
        assert trainer.global_step == 16
        runs[name] = {key: float(trainer.callback_metrics[key]) for key in epoch_metrics}
    assert runs["resumed"] == runs["full"]
    assert 0 < runs["full"]["train/acc_epoch"] <= 1


def test_start_up_runs_without_collections_and_its_objects_are_frozen_after_it():
    gc.unfreeze()
    with collections_paused():
        assert not gc.isenabled()
        made = [[] for _ in range(1000)]
    assert gc.isenabled() and gc.get_freeze_count() >= len(made)
    gc.unfreeze()
    with pytest.raises(RuntimeError), collections_paused():
        raise RuntimeError("build failed")
    assert gc.isenabled() and gc.get_freeze_count() == 0  # a failed start-up freezes nothing


def test_entry_points_end_without_a_collection_over_every_object(monkeypatch):
    monkeypatch.setattr("sys.argv", ["train.py"])
    gc.unfreeze()
    try:
        run(lambda: None)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
