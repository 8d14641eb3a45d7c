"""What a checkpoint needs beyond Lightning's own for a resumed run to match one never stopped."""

from typing import Optional

import torch
from lightning.pytorch.callbacks import Callback
from torchmetrics import Metric

from mnistlab.data.batches import TensorBatches
from mnistlab.errors import CheckpointError
from mnistlab.perf.lightning_internals import logged_training_results, set_update_count


def is_tensors(value) -> bool:
    items = value if isinstance(value, list) else [value]
    return all(isinstance(item, torch.Tensor) for item in items)


def copied(value):
    return [item.detach().clone() for item in value] if isinstance(value, list) else value.detach().clone()


class ResumeState(Callback):
    """Saves the torch random state (dropout), the metrics accumulated in the current training epoch,
    and how far the training batches got in it.

    Lightning restores weights, optimizer, scheduler and loops, but not the first two; without them
    dropout masks and the epoch's train/* averages after a mid-epoch resume would differ from an
    uninterrupted run. Lightning 2.6 also saves the batches' state_dict, but never loads it back
    when configure_optimizers asked for trainer.estimated_stepping_batches (Lightning issue #20550),
    so it is restored here; loading it twice does no harm.
    """

    def __init__(self):
        self.loaded: Optional[dict] = None

    @staticmethod
    def training_metrics(trainer, pl_module) -> dict:
        """The torchmetrics objects logged in this training epoch, by their name in the module."""
        logged = {id(result.value) for result in logged_training_results(trainer) if isinstance(result.value, Metric)}
        return {name: module for name, module in pl_module.named_modules() if id(module) in logged}

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        batches = trainer.train_dataloader
        stateful = isinstance(batches, TensorBatches)
        # After an epoch's last batch Lightning resumes with the next epoch: nothing of this one is kept.
        mid_epoch = stateful and 0 < batches.batches_done < len(batches)
        metrics = self.training_metrics(trainer, pl_module) if mid_epoch else {}
        checkpoint["resume_state"] = {
            "batches": batches.state_dict() if stateful else None,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
            "metrics": {
                name: {
                    "state": {key: copied(value) for key, value in metric.metric_state.items()},
                    "updates": metric.update_count,
                }
                for name, metric in metrics.items()
            },
        }

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        self.loaded = checkpoint.get("resume_state")  # applied when training starts, after all restoring

    def on_train_start(self, trainer, pl_module) -> None:
        if self.loaded is None:
            return
        modules = dict(pl_module.named_modules())
        for name, saved in self.loaded["metrics"].items():
            metric = modules.get(name)
            # names from the file: only a metric's declared states may be set, never other attributes
            wrong = [
                key
                for key, value in saved["state"].items()
                if not isinstance(metric, Metric) or key not in metric.metric_state or not is_tensors(value)
            ]
            if not isinstance(metric, Metric) or wrong:
                raise CheckpointError(
                    f"{trainer.ckpt_path}: its resume_state names {name!r}"
                    f"{'.' + repr(wrong[0]) if wrong else ''}, not a metric state of this "
                    f"model; not resumed"
                )
        torch.set_rng_state(self.loaded["torch_rng"].cpu())
        if self.loaded["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([state.cpu() for state in self.loaded["cuda_rng"]])
        if self.loaded["batches"] is not None:
            trainer.train_dataloader.load_state_dict(self.loaded["batches"])  # read at the epoch's first batch
        for name, saved in self.loaded["metrics"].items():
            metric = modules[name]
            for key, value in saved["state"].items():
                moved = (
                    [item.to(metric.device) for item in value] if isinstance(value, list) else value.to(metric.device)
                )
                setattr(metric, key, moved)
            set_update_count(metric, saved["updates"])
        self.loaded = None
