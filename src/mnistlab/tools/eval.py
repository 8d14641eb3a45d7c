"""The task behind eval.py: evaluate a checkpoint on the test or validation set, or watch a run."""

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Optional

from omegaconf import DictConfig

from mnistlab.config.train import validate
from mnistlab.received.files import refuse_links
from mnistlab.runs.run_dir import data_config, run_dir_of, saved_config

log = logging.getLogger(__name__)


class Evaluator:
    """Evaluates checkpoints of one run the way train.py tests them: same data, batches, precision."""

    def __init__(self, run_dir: Optional[Path], data_dir: Optional[str], trusted_modules=(), max_parameters=None):
        from hydra.utils import instantiate

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
        import lightning as L

        from mnistlab.runs.checkpoints import load_classifier

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
    import lightning.pytorch  # noqa: F401  (its import sets its logger's level: set ours after)

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no "GPU available: ..." per checkpoint
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*treespec.*")


def default_output(ckpt_path: Path, run_dir: Optional[Path], split: str) -> Path:
    if run_dir is not None:
        return run_dir / "eval" / f"{ckpt_path.stem}-{split}.json"
    return ckpt_path.with_name(f"{ckpt_path.stem}-{split}.json")


def evaluate(cfg: DictConfig) -> dict:
    """eval.py: print and save the metrics of one checkpoint, or watch a run (watch.enabled)."""
    validate(cfg)
    import torch

    from mnistlab.callbacks.predictions import RecordPredictions
    from mnistlab.received.checkpoint import read_checkpoint
    from mnistlab.runs.checkpoints import resolve_checkpoint
    from mnistlab.runs.report import write_eval_details

    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    quiet_lightning()
    if cfg.watch.enabled:
        from mnistlab.tools.watch import watch

        return watch(cfg)

    ckpt_path = resolve_checkpoint(cfg.ckpt_path)
    read_checkpoint(ckpt_path, cfg.trusted_modules, cfg.max_parameters)  # refused before any data loads
    run_dir = run_dir_of(ckpt_path)
    recorder = RecordPredictions()  # for the confusion matrix and mistakes beside the metrics
    evaluator = Evaluator(run_dir, cfg.data.data_dir, cfg.trusted_modules, cfg.max_parameters)
    metrics = evaluator(ckpt_path, cfg.split, callbacks=[recorder])
    if run_dir is not None and not cfg.output:
        refuse_links(run_dir)  # the results go to <run>/eval/
    output = Path(cfg.output) if cfg.output else default_output(ckpt_path, run_dir, cfg.split)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(metrics, indent=2))
    split = cfg.split
    print(
        f"{split}/acc {metrics[f'{split}/acc']:.4f}  {split}/loss {metrics[f'{split}/loss']:.4f}  "
        f"(step {metrics['step']}, {os.path.relpath(ckpt_path)})"
    )
    details = write_eval_details(recorder.predictions, output, f"{os.path.relpath(ckpt_path)} on the {split} set")
    print(
        f"metrics saved in {os.path.relpath(output)}; confusion matrix and mistakes in "
        f"{', '.join(path.name for path in details)}"
    )
    return metrics
