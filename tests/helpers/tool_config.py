"""Helpers for the tests of eval.py, export.py and predict.py: their configs composed in-process, and
runs trained in-process that look like train.py's (with the saved .hydra/config.yaml)."""

from pathlib import Path

from omegaconf import OmegaConf

from helpers import CONF, compose, quick_overrides


def compose_tool(name: str, overrides: list):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from mnistlab.settings.tool_schema import register_tool_schemas

    register_tool_schemas()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return hydra_compose(name, overrides=overrides)


def train_run(data_dir: Path, run_dir: Path, overrides: list) -> dict:
    """train() on quick_overrides + overrides, saving the config where Hydra would."""
    from mnistlab.tasks.train import train

    cfg = compose(quick_overrides(data_dir, run_dir) + overrides)
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    return train(cfg)
