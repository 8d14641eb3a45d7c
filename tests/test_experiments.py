"""Every preset in conf/experiment/ composes, validates and trains a few steps on the synthetic data."""

import pytest
import torch

from conftest import CONF, compose, quick_overrides
from mnistlab.data.augment import random_affine
from mnistlab.schedulers import one_cycle
from mnistlab.schema import validate
from mnistlab.train import train

PRESETS = sorted(path.stem for path in (CONF / "experiment").glob("*.yaml"))


def test_presets_exist():
    assert {"softmax_tutorial", "mlp_tutorial", "cnn_tutorial", "lstm_tutorial", "lstm_tutorial_noproj"} <= set(PRESETS)


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_trains_a_few_steps(preset, mnist_dir, tmp_path):
    cfg = compose([f"experiment={preset}"] + quick_overrides(mnist_dir, tmp_path)
                  + ["trainer.max_steps=6", "trainer.val_check_interval=3"])
    validate(cfg)
    metrics = train(cfg)
    assert metrics["step"] == 6 and 0.0 <= metrics["test/acc"] <= 1.0


def test_random_affine_keeps_shape_and_is_identity_at_zero():
    images = torch.rand(8, 1, 28, 28)
    assert torch.allclose(random_affine(images, 0.0, 0.0), images, atol=1e-5)
    moved = random_affine(images, 3.0, 15.0)
    assert moved.shape == images.shape and not torch.allclose(moved, images)


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
