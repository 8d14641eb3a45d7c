"""What a checkpoint needs beyond Lightning's own for a resumed run to match one never stopped."""

from typing import Optional

import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn
from torchmetrics import Metric

from mnistlab.compat.lightning import logged_training_results, set_update_count
from mnistlab.data.batches import TensorBatches
from mnistlab.errors import CheckpointError


def is_tensors(value) -> bool:
    items = value if isinstance(value, list) else [value]
    return all(isinstance(item, torch.Tensor) for item in items)


def copied(value):
    """A metric state's copy on the CPU (gathered from every process under DDP)."""
    return [item.detach().cpu().clone() for item in value] if isinstance(value, list) else value.detach().cpu().clone()


MAX_CALLBACK_METRICS, MAX_METRIC_NAME = 1000, 200


def callback_metrics_of(trainer) -> dict:
    """The values the callbacks see (the newest of each logged name) as plain floats."""
    return {
        name: float(value)
        for name, value in trainer.callback_metrics.items()
        if isinstance(value, torch.Tensor) and value.numel() == 1
    }


def checked_callback_metrics(saved, path) -> dict:
    """A checkpoint's callback_metrics: names and numbers only (the file is data), within bounds."""
    if saved is None:
        return {}
    fine = (
        isinstance(saved, dict)
        and len(saved) <= MAX_CALLBACK_METRICS
        and all(isinstance(name, str) and len(name) <= MAX_METRIC_NAME for name in saved)
        and all(isinstance(value, float) for value in saved.values())
    )
    if not fine:
        raise CheckpointError(f"{path}: its resume_state.callback_metrics is not a table of names and numbers")
    return saved


def every_process(trainer, own: dict) -> list:
    """`own` of every process of the run, in rank order (a collective: every process saves the checkpoint)."""
    if trainer.world_size == 1:
        return [own]
    import torch.distributed

    gathered = [None] * trainer.world_size
    torch.distributed.all_gather_object(gathered, own)
    return gathered


class ResumeState(Callback):
    """Saves the torch random state (dropout), the metrics accumulated in the current training epoch,
    and how far the training batches got in it.

    Lightning restores weights, optimizer, scheduler and loops, but not the first two; without them
    dropout masks and the epoch's train/* averages after a mid-epoch resume would differ from an
    uninterrupted run. Lightning 2.6 also saves the batches' state_dict, but never loads it back
    when configure_optimizers asked for trainer.estimated_stepping_batches (Lightning issue #20550),
    so it is restored here; loading it twice does no harm.

    It also saves the values the callbacks saw (trainer.callback_metrics: the last validation's val/acc, ...):
    a resumed run's ModelCheckpoint then judges its next saves as the run never stopped would, and a run that
    had finished training when it stopped (killed during its test) reports the same final metrics.

    Under DDP each process has its own random state and its own part of the epoch's sums (those of its
    metrics, and what the LightningModule's on_save_checkpoint adds: the Classifier's train_totals), while
    only rank 0's checkpoint dict is written. So every process's are gathered into `ranks`, and a run resumed
    with as many processes gives each its own back: its epoch's train/* averages are those of a run never
    stopped. Resumed with another number of processes, process r takes saved process r's part, if any (a
    warning says what the epoch's averages leave out); the top-level entries are rank 0's, as before.
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
        own = {
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
            "callback_metrics": callback_metrics_of(trainer),
            "metrics": {
                name: {
                    "state": {key: copied(value) for key, value in metric.metric_state.items()},
                    "updates": metric.update_count,
                }
                for name, metric in metrics.items()
            },
        }
        module = {}
        pl_module.on_save_checkpoint(module)  # what the module adds to this checkpoint, as this process has it
        ranks = every_process(trainer, {**own, "module": module})
        checkpoint["resume_state"] = {"batches": batches.state_dict() if stateful else None, **own, "ranks": ranks}

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        self.loaded = checkpoint.get("resume_state")  # applied when training starts, after all restoring
        ranks = self.loaded.get("ranks") if isinstance(self.loaded, dict) else None
        if ranks is None:  # saved before every process's part was kept: rank 0's for all
            return
        if not isinstance(ranks, list) or not ranks or not all(isinstance(part, dict) for part in ranks):
            raise CheckpointError(f"{trainer.ckpt_path}: its resume_state.ranks is not a list of dicts; not resumed")
        rank, processes = trainer.global_rank, trainer.world_size
        mid_epoch = any(part.get("metrics") or part.get("module") for part in ranks)
        if len(ranks) != processes and mid_epoch:
            gone = f"; its train/* averages leave out what processes {processes} to {len(ranks) - 1} trained in it"
            left_out = gone if len(ranks) > processes else ""
            rank_zero_warn(
                f"resumed with {processes} processes from a checkpoint saved in mid-epoch by {len(ranks)}: the "
                f"rest of that epoch has other batches than it would have had{left_out}"
            )
        own = ranks[rank] if rank < len(ranks) else {"metrics": {}, "module": {}}
        self.loaded = {
            **self.loaded,
            **{key: own[key] for key in ("torch_rng", "cuda_rng", "metrics", "callback_metrics") if key in own},
        }
        saved = ranks[0].get("module")
        mine = own.get("module") or {}
        if isinstance(saved, dict) and isinstance(mine, dict) and saved and rank != 0:
            # the module reads its part (checkpoint["train_totals"]) again: this process's, or none
            view = {key: value for key, value in checkpoint.items() if key not in saved}
            view.update({key: value for key, value in mine.items() if isinstance(key, str) and key in saved})
            pl_module.on_load_checkpoint(view)

    def restore_callback_metrics(self, trainer) -> None:
        saved = checked_callback_metrics(self.loaded.get("callback_metrics"), trainer.ckpt_path)
        trainer.callback_metrics.update({name: torch.tensor(value) for name, value in saved.items()})

    def on_fit_end(self, trainer, pl_module) -> None:
        if self.loaded is not None:  # nothing was left to train (stopped during its test): the values it saw
            self.restore_callback_metrics(trainer)
            self.loaded = None

    def on_train_start(self, trainer, pl_module) -> None:
        if self.loaded is None:
            return
        self.restore_callback_metrics(trainer)
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
