"""`train.py resume=<run dir>` / `ckpt_path=<run>/checkpoints/<file>`: the run's saved config and checkpoint.

The root train.py has already pointed Hydra at the run directory (runs.continue_in_run_dir);
here the config becomes the run's own, with the command line's single-key overrides on top.
"""

import logging
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from mnistlab.errors import UserError
from mnistlab.runs import run_dir_of, saved_config

log = logging.getLogger(__name__)

RESUME_KEYS = ("resume", "ckpt_path")


def apply_overrides(cfg: DictConfig, overrides: list, groups: set) -> None:
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.key_or_group
        if key in RESUME_KEYS or key.startswith("hydra"):
            continue
        if key in groups:
            raise UserError(f"{override.input_line}: a resumed run keeps its config groups; "
                            f"change single keys instead (e.g. trainer.max_epochs=10)")
        if override.is_delete():
            parent, _, leaf = key.rpartition(".")
            node = OmegaConf.select(cfg, parent) if parent else cfg
            if node is not None and leaf in node:
                del node[leaf]
        else:
            OmegaConf.update(cfg, key, override.value(), merge=False, force_add=True)


def resumed_config(cfg: DictConfig) -> DictConfig:
    """The config to train with: `cfg` itself, or for a resumed run its saved config and checkpoint."""
    if cfg.get("resume") is not None:
        run_dir, ckpt_path = Path(cfg.resume), None  # its newest checkpoint, found below
    elif cfg.ckpt_path is not None and Path(cfg.ckpt_path).is_file() and run_dir_of(cfg.ckpt_path):
        run_dir, ckpt_path = run_dir_of(cfg.ckpt_path), Path(cfg.ckpt_path)
    else:
        return cfg
    if ckpt_path is not None:
        from mnistlab.checkpoints import load_checkpoint

        load_checkpoint(ckpt_path, mmap=True)  # refuse an unsafe or damaged file before anything else
    hydra = HydraConfig.get()
    resumed = saved_config(run_dir)
    apply_overrides(resumed, list(hydra.overrides.task), set(hydra.runtime.choices))
    if ckpt_path is None:
        from mnistlab.checkpoints import latest_checkpoint

        ckpt_path = latest_checkpoint(run_dir)
        if ckpt_path is None:
            raise UserError(f"resume={cfg.resume}: the run saved no checkpoint yet; start it again instead")
    resumed.ckpt_path = str(ckpt_path)
    log.info("resuming %s from %s", run_dir, ckpt_path)
    return resumed
