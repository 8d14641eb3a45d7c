"""Every preset in conf/experiment/ composes, validates and trains a few steps on the synthetic data."""

import pytest
import torch
from helpers import CONF, compose, quick_overrides

from mnistlab.data.augment import random_affine
from mnistlab.settings.schema import validate
from mnistlab.tasks.train import train
from mnistlab.training.schedulers import one_cycle

PRESETS = sorted(path.stem for path in (CONF / "experiment").glob("*.yaml"))


def test_presets_exist():
    assert {"softmax_tutorial", "mlp_tutorial", "cnn_tutorial", "lstm_tutorial", "lstm_tutorial_noproj"} <= set(PRESETS)


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_trains_a_few_steps(preset, mnist_dir, tmp_path):
    cfg = compose(
        [f"experiment={preset}"]
        + quick_overrides(mnist_dir, tmp_path)
        + ["trainer.max_steps=6", "trainer.val_check_interval=3"]
    )
    validate(cfg)
    metrics = train(cfg)
    assert metrics["step"] == 6 and 0.0 <= metrics["test/acc"] <= 1.0


def test_random_affine_keeps_shape_and_is_identity_at_zero():
    images = torch.rand(8, 1, 28, 28)
    assert torch.allclose(random_affine(images, 0.0, 0.0), images, atol=1e-5)
    moved = random_affine(images, 3.0, 15.0)
    assert moved.shape == images.shape and not torch.allclose(moved, images)


def test_random_scale_enlarges_and_shrinks_within_its_range():
    torch.manual_seed(0)
    images = torch.zeros(64, 1, 28, 28)
    images[:, :, 10:18, 10:18] = 1.0  # an 8 x 8 centred square
    areas = random_affine(images, 0.0, 0.0, 0.5).sum(dim=(1, 2, 3))
    assert areas.min() >= (0.5 * 8) ** 2 * 0.9 and areas.max() <= (1.5 * 8) ** 2 * 1.1
    assert areas.min() < 0.7 * 64 < 1.3 * 64 < areas.max()  # some shrunk, some enlarged


def test_label_smoothing_applies_to_the_training_loss_only(mnist_dir, tmp_path, monkeypatch):
    import mnistlab.training.classifier

    smoothing = []  # label_smoothing of every cross-entropy the classifier computes
    plain_cross_entropy = torch.nn.functional.cross_entropy

    def spy(logits, labels, label_smoothing=0.0, **kwargs):
        smoothing.append(label_smoothing)
        return plain_cross_entropy(logits, labels, label_smoothing=label_smoothing, **kwargs)

    monkeypatch.setattr(mnistlab.training.classifier.F, "cross_entropy", spy)
    train(
        compose(
            ["model=softmax", "model.label_smoothing=0.2"]
            + quick_overrides(mnist_dir, tmp_path)
            + ["trainer.max_steps=3", "trainer.val_check_interval=3"]
        )
    )
    assert smoothing[:3] == [0.2, 0.2, 0.2] and set(smoothing[3:]) == {0.0}  # then validation and test


def test_one_cycle_peaks_at_the_optimizer_lr():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.4, momentum=0.9)
    sched = one_cycle(opt, steps_per_epoch=10, total_steps=100, pct_start=0.25)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert max(lrs) == pytest.approx(0.4) and lrs.index(max(lrs)) in (24, 25)
    assert lrs[0] == pytest.approx(0.4 / 25) and lrs[-1] < 1e-4
