"""Every option of every config group in conf/ composes into a config whose parts all build, without training:
the data module, the Classifier (its network, and its optimizer and scheduler through configure_optimizers), the
trainer, callbacks and loggers. And a data module of the user's own comes from its config as MNIST's does."""

import importlib.util
import inspect
import io
import types
import uuid

import lightning as L
import pytest
import torch
from helpers import CONF, compose, quick_overrides
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

from mnistlab.errors import UnsafeConfigError
from mnistlab.settings.schema import validate
from mnistlab.settings.targets import check_targets
from mnistlab.tasks.train import build_all, build_classifier, build_datamodule, train

# hydra/ is Hydra's own (run directories, sweepers, launchers): it configures how train.py runs, builds nothing of it
GROUPS = sorted(folder.name for folder in CONF.iterdir() if folder.is_dir() and folder.name != "hydra")
OPTIONS = [(group, path.stem) for group in GROUPS for path in sorted((CONF / group).glob("*.yaml"))]


def test_options_are_found():
    assert {"data", "model", "optimizer", "scheduler", "trainer", "callbacks", "logger", "experiment"} <= set(GROUPS)
    assert ("model", "cnn") in OPTIONS and ("experiment", "speedrun") in OPTIONS and len(OPTIONS) >= 30


def unbuildable(cfg) -> dict:
    """Key -> why this machine does not build it here; its arguments are only bound to its class's signature."""
    why = {}
    loggers = cfg.get("logger") or {}
    if loggers.get("mlflow"):
        why["logger.mlflow"] = "MLflow's logger creates its database when built (~8 s): tests/test_trackers.py does"
    if loggers.get("wandb") and importlib.util.find_spec("wandb") is None:
        why["logger.wandb"] = "needs wandb: pip install 'mnistlab[trackers]'"
    trainer = cfg.trainer
    if trainer.accelerator in ("gpu", "cuda") and torch.cuda.device_count() < trainer.devices:
        why["trainer"] = f"needs {trainer.devices} GPU(s); this machine has {torch.cuda.device_count()}"
    return why


def bind(node) -> None:
    """The config's arguments fit its class's constructor (what instantiate would call)."""
    arguments = {key: value for key, value in node.items() if not str(key).startswith("_")}
    inspect.signature(get_class(node._target_)).bind(**arguments)


def built_entries(cfg, group: str) -> int:
    return sum(1 for entry in (cfg.get(group) or {}).values() if entry and "_target_" in entry)


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{group}={option}" for group, option in OPTIONS])
def test_every_option_builds(group, option, mnist_dir, tmp_path, monkeypatch):
    for name in ("CONFIG", "CACHE", "DATA"):  # logger=wandb: nothing written outside tmp_path
        monkeypatch.setenv(f"WANDB_{name}_DIR", str(tmp_path / f"wandb-{name.lower()}"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    quiet = [o for o in quick_overrides(mnist_dir, tmp_path) if "enable_progress_bar" not in o]  # it is built too
    cfg = compose([f"{group}={option}"] + quiet)
    validate(cfg)
    skipped = unbuildable(cfg)
    for key in skipped:
        bind(OmegaConf.select(cfg, key))
        if key != "trainer":
            OmegaConf.update(cfg, key, None, merge=False)

    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()
    datamodule.setup("fit")
    model = build_classifier(cfg)
    assert isinstance(datamodule, L.LightningDataModule) and isinstance(model, L.LightningModule)
    network = model.net[1]
    assert f"{type(network).__module__}.{type(network).__qualname__}" == cfg.model.net._target_
    assert model.hparams.mean == cfg.data.mean and model.hparams.std == cfg.data.std
    saved = io.BytesIO()
    torch.save(dict(model.hparams), saved)  # plain values: checkpoints load weights-only
    assert torch.load(io.BytesIO(saved.getvalue()), weights_only=True) == dict(model.hparams)
    images, _ = datamodule.on_after_batch_transfer(next(iter(datamodule.train_dataloader())), 0)
    assert model(images[:4]).shape == (4, 10)

    steps = {"accumulate_grad_batches": 1, "estimated_stepping_batches": 8}
    model.trainer = types.SimpleNamespace(datamodule=datamodule, **steps)  # what configure_optimizers reads
    optimizers = model.configure_optimizers()
    optimizer = optimizers["optimizer"] if isinstance(optimizers, dict) else optimizers
    assert isinstance(optimizer, get_class(cfg.optimizer._target_))
    assert isinstance(optimizers, dict) == bool(cfg.scheduler)  # a schedule exactly when one is configured

    callbacks, loggers = build_all(cfg, "callbacks"), build_all(cfg, "logger")
    assert len(callbacks) == built_entries(cfg, "callbacks") and len(loggers) == built_entries(cfg, "logger")
    if "trainer" not in skipped:
        trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
        assert isinstance(trainer, L.Trainer) and all(logger in trainer.loggers for logger in loggers)
    if skipped:
        pytest.skip("; ".join(f"{key} only bound to its class's arguments: {why}" for key, why in skipped.items()))


# A data module of the user's own: random images whose class is a bright row at 2 * class (easily learnt).
BLOCKS = """
import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset


class Blocks(L.LightningDataModule):
    def __init__(self, size=320, batch_size=32, mean=0.5, std=0.5, seed=None):
        super().__init__()
        self.size, self.batch_size, self.mean, self.std, self.seed = size, batch_size, mean, std, seed

    def setup(self, stage=None):
        generator = torch.Generator().manual_seed(self.seed or 0)
        labels = torch.randint(0, 10, (self.size,), generator=generator)
        images = 0.2 * torch.rand(self.size, 1, 28, 28, generator=generator)
        images[torch.arange(self.size), 0, 2 * labels] = 1.0
        self.data = TensorDataset(images, labels)

    def train_dataloader(self):
        return DataLoader(self.data, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.data, batch_size=self.batch_size)

    def test_dataloader(self):
        return DataLoader(self.data, batch_size=self.batch_size)
"""


def test_a_data_module_of_your_own_comes_from_its_config(tmp_path, monkeypatch):
    """conf/data/<name>.yaml with a `_target_` in the user's package (here on hydra.searchpath), trusted on the command
    line: train.py builds and trains on it; a run's saved config naming it is refused unless trusted."""
    module = f"mydata_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(BLOCKS)
    (tmp_path / "conf" / "data").mkdir(parents=True)
    (tmp_path / "conf" / "data" / "blocks.yaml").write_text(
        f"_target_: {module}.Blocks\nsize: 320\nbatch_size: 32\nmean: 0.5\nstd: 0.5\nseed: ${{seed}}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    overrides = [o for o in quick_overrides(tmp_path, tmp_path / "run") if not o.startswith("data.")]
    cfg = compose(
        overrides
        + [f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "data=blocks", "model=softmax", "optimizer.lr=3e-2"]
        + ["scheduler=none", "trainer.max_epochs=3", f"trusted_modules=[{module}]"]
    )
    assert cfg.model.mean == 0.5  # the Classifier's normalisation is the data config's
    metrics = train(cfg)
    assert metrics["test/acc"] > 0.9 and metrics["step"] == 30  # 320 images in batches of 32, 3 epochs
    with pytest.raises(UnsafeConfigError, match=f"refused to build data._target_='{module}.Blocks'"):
        check_targets(cfg, [], source="config.yaml", run_config=True)  # what resume= checks in a saved config
    check_targets(cfg, [module], source="config.yaml", run_config=True)


def test_targets_of_modules_moved_by_the_package_layout_are_renamed():
    from mnistlab.settings.upgrade import upgrade_hparams

    old = {
        "model": {"_target_": "mnistlab.models.mlp.MLP", "hidden": [8], "l2": 0.1},
        "scheduler": {"_target_": "mnistlab.schedulers.cosine", "_partial_": True},
        "optimizer": {"_target_": "mnistlab.schedulers.os.system"},  # not a moved module: left for the allowlist
    }
    new = upgrade_hparams(old)
    assert new["net"] == {"_target_": "mnistlab.models.mlp.MLP", "hidden": [8]} and new["l2"] == 0.1
    assert new["scheduler"]["_target_"] == "mnistlab.training.schedulers.cosine"
    assert new["optimizer"]["_target_"] == "mnistlab.schedulers.os.system"
