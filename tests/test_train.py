import csv

import pytest
import torch
from helpers import compose, quick_overrides

from mnistlab.tasks.train import train

SMALL = {
    "softmax": [],
    "mlp": ["model.net.hidden=[64]"],
    "cnn": ["model.net.channels=[8,16]", "model.net.fc_size=64"],
    "lstm": ["model.net.hidden_size=64", "model.net.input_proj=16"],
}
LEARNING_RATE = {"adam": "optimizer.lr=1e-2", "sgd": "optimizer.lr=0.1 optimizer.momentum=0.9"}
SLOW_LEARNERS = {("lstm", "sgd"): ["optimizer.lr=1.0"]}  # plain SGD moves an LSTM slowly


def step_losses(run_dir):
    with open(run_dir / "metrics.csv") as f:
        return [float(row["train/loss_step"]) for row in csv.DictReader(f) if row.get("train/loss_step")]


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("model", list(SMALL))
def test_every_model_and_optimizer_learns(model, optimizer, mnist_dir, tmp_path):
    cfg = compose(
        quick_overrides(mnist_dir, tmp_path)
        + [
            f"model={model}",
            f"optimizer={optimizer}",
            *LEARNING_RATE[optimizer].split(),
            "scheduler=none",
            "trainer.max_epochs=3",
        ]
        + SMALL[model]
        + SLOW_LEARNERS.get((model, optimizer), [])
    )
    metrics = train(cfg)
    losses = step_losses(tmp_path)
    assert len(losses) == 3 * 16  # 500 training images in batches of 32, logged every step
    assert sum(losses[-8:]) / 8 < 0.7 * sum(losses[:8]) / 8
    assert 0.0 <= metrics["test/acc"] <= 1.0
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()


def test_same_seed_gives_identical_metrics(mnist_dir, tmp_path):
    runs = []
    for name in ("a", "b"):
        overrides = quick_overrides(mnist_dir, tmp_path / name) + ["model=cnn", "seed=0", "trainer.max_epochs=2"]
        runs.append(train(compose(overrides + SMALL["cnn"])))
    assert runs[0] == runs[1]
    assert step_losses(tmp_path / "a") == step_losses(tmp_path / "b")


def test_sgd_with_exponential_decay_l2_and_ema(mnist_dir, tmp_path):
    overrides = quick_overrides(mnist_dir, tmp_path) + [
        "model=mlp",
        "model.net.hidden=[64]",
        "model.l2=1e-4",
        "model.init=trunc_normal",
        "optimizer=sgd",
        "optimizer.lr=0.5",
        "scheduler=exponential",
        "scheduler.rate=0.5",
        "ema.enabled=true",
        "trainer.max_epochs=2",
    ]
    metrics = train(compose(overrides))
    assert metrics["test/acc"] > 0.5
    with open(tmp_path / "metrics.csv") as f:
        lrs = [float(r["lr-SGD"]) for r in csv.DictReader(f) if r.get("lr-SGD")]
    assert lrs[0] == pytest.approx(0.5) and lrs[-1] == pytest.approx(0.25)  # decayed once, after epoch 1
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    ema_keys = [k for k in state if k.startswith("ema.net.")]
    assert ema_keys and not torch.equal(state["ema.net.1.layers.1.weight"], state["net.1.layers.1.weight"])


def test_checkpoint_loads_weights_only(mnist_dir, tmp_path):
    from mnistlab.training.classifier import Classifier

    train(compose(quick_overrides(mnist_dir, tmp_path) + ["model=softmax"]))
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    assert isinstance(torch.load(ckpt, weights_only=True)["hyper_parameters"]["net"], dict)
    model = Classifier.load_from_checkpoint(ckpt)
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_without_the_best_checkpoint_the_last_one_is_tested(mnist_dir, tmp_path):
    """callbacks.checkpoint=null leaves last.ckpt's callback, which monitors nothing: it has no best score."""
    metrics = train(compose(quick_overrides(mnist_dir, tmp_path) + ["model=softmax", "callbacks.checkpoint=null"]))
    assert 0 <= metrics["test/acc"] <= 1 and "val/acc" in metrics  # the run's last validation
    assert (tmp_path / "metrics.json").is_file()


def test_divergence_is_caught_between_checks_and_at_the_epoch_end():
    from types import SimpleNamespace

    from mnistlab.callbacks.divergence import StopOnDivergence, TrainingDiverged

    trainer = SimpleNamespace(global_step=0, current_epoch=0, world_size=1)
    callback = StopOnDivergence(every_n_steps=4)
    for step, loss in enumerate([1.0, 2.0, 3.0, 4.0, 5.0, float("inf")]):  # steps 0-3 checked, 4-5 not yet
        trainer.global_step = step
        callback.on_train_batch_end(trainer, None, {"loss": torch.tensor(loss)}, None, step)
    with pytest.raises(TrainingDiverged, match="the loss became inf between steps 4 and 5"):
        callback.on_train_epoch_end(trainer, None)
    callback.on_train_epoch_end(trainer, None)  # nothing pending: no error
