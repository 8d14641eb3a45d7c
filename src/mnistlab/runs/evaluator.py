"""Testing a run's checkpoint again as train.py tested it: what eval.py, watch and the report task share."""

import logging
import warnings
from pathlib import Path
from typing import Optional

import lightning as L
from hydra.utils import instantiate

from mnistlab.runs.checkpoints import load_classifier
from mnistlab.runs.run_dir import data_config, saved_config


class Evaluator:
    """Evaluates checkpoints of one run the way train.py tests them: same data, batches, precision."""

    def __init__(self, run_dir: Optional[Path], data_dir: Optional[str], trusted_modules=(), max_parameters=None):
        self.trusted_modules = list(trusted_modules)  # the command line's (README: Safety)
        self.max_parameters = max_parameters

        run_cfg = saved_config(run_dir, self.trusted_modules) if run_dir is not None else None
        overrides = {"seed": 0, **({"data_dir": data_dir} if data_dir is not None else {})}  # eval is not shuffled
        data = data_config(run_dir, self.trusted_modules, run_cfg, **overrides)  # the run's data module, checked
        trainer_cfg = (run_cfg or {}).get("trainer") or {}
        self.accelerator = str(trainer_cfg.get("accelerator", "auto"))
        self.precision = str(trainer_cfg.get("precision", "32-true"))
        self.datamodule = instantiate(data, _convert_="all")
        self.datamodule.prepare_data()

    def __call__(self, ckpt_path: Path, split: str, callbacks: tuple = ()) -> dict:
        model, checkpoint = load_classifier(ckpt_path, self.trusted_modules, self.max_parameters)
        trainer = L.Trainer(
            accelerator=self.accelerator,
            devices=1,
            precision=self.precision,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=list(callbacks),
        )
        run = trainer.test if split == "test" else trainer.validate
        [metrics] = run(model, datamodule=self.datamodule, verbose=False)
        return {
            "checkpoint": str(ckpt_path),
            "step": checkpoint.global_step,
            "epoch": checkpoint.epoch,
            "split": split,
            **{name: float(value) for name, value in metrics.items()},
        }


def quiet_lightning() -> None:
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no "GPU available: ..." per checkpoint
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*treespec.*")
