"""trainer.max_epochs=-1 trains without end: with a learning-rate schedule (spread over the run's steps) it needs
trainer.max_steps, and says so in one line; with max_steps it trains."""

import pytest
from helpers import compose, quick_overrides

from mnistlab.errors import ConfigError
from mnistlab.settings.schema import validate
from mnistlab.tasks.train import train


@pytest.mark.parametrize("scheduler", ["cosine", "one_cycle", "exponential"])
def test_no_end_and_a_schedule_is_refused(scheduler, tmp_path):
    cfg = compose([f"paths.output_dir={tmp_path}", f"scheduler={scheduler}", "trainer.max_epochs=-1"])
    with pytest.raises(ConfigError, match=r"^trainer.max_epochs=-1 trains without end.*set trainer.max_steps"):
        validate(cfg)


@pytest.mark.parametrize("overrides", [["trainer.max_steps=100"], ["scheduler=none"], ["trainer.max_epochs=3"]])
def test_a_length_or_no_schedule_is_accepted(overrides, tmp_path):
    validate(compose([f"paths.output_dir={tmp_path}", "trainer.max_epochs=-1", *overrides]))


def test_max_steps_alone_sets_the_length(mnist_dir, tmp_path):
    overrides = quick_overrides(mnist_dir, tmp_path) + [
        "model=softmax",
        "trainer.max_epochs=-1",
        "trainer.max_steps=25",
    ]
    metrics = train(compose(overrides))  # 16 steps an epoch: the cosine schedule ends in the second epoch
    assert metrics["step"] == 25 and metrics["test/acc"] > 0.5
