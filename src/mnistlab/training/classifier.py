"""The one LightningModule: wraps any network from mnistlab.models with loss, metrics and optimizers.

conf/model/<name>.yaml is its config (`_target_: mnistlab.training.classifier.Classifier`, `_recursive_: false`):
the network under `net`, the training keys beside it; conf/train.yaml adds optimizer, scheduler, ema, mean, std."""

import math
from typing import Optional, Sequence

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from mnistlab.compat.torch import add_scaled_all
from mnistlab.data.batches import TensorBatches
from mnistlab.models.init import init_weights
from mnistlab.models.normalize import Normalize
from mnistlab.settings.targets import check_targets
from mnistlab.training.ema import EMA
from mnistlab.training.epoch_sums import EpochSums


def plain(value):
    """A config node as plain dicts and lists (resolved): hyperparameters must load with weights_only=True."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value


class Classifier(L.LightningModule):
    """Cross-entropy classifier; all arguments are plain dicts, strings and numbers, kept as its hyperparameters
    (checkpoints load weights-only, and rebuild it from them: mnistlab.runs.checkpoints.load_classifier).

    net: the network's config (`_target_` and its constructor's arguments); optimizer and scheduler: partial
    factories as in conf/optimizer and conf/scheduler; ema: {enabled, decay}; mean/std: input normalisation,
    folded into the network; l2: penalty l2 * sum(w**2) / 2 on weights (not biases); label_smoothing: of the
    training loss; init, init_std, init_bias: mnistlab.models.init.init_weights' scheme for the network.
    trusted_modules: modules besides mnistlab.settings.targets' allowlist whose classes the configs may name.
    """

    def __init__(
        self,
        net: dict,
        optimizer: dict,
        scheduler: Optional[dict] = None,
        ema: Optional[dict] = None,
        mean: float = 0.1307,
        std: float = 0.3081,
        l2: float = 0.0,
        label_smoothing: float = 0.0,
        init: str = "default",
        init_std: float = 0.1,
        init_bias: float = 0.0,
        trusted_modules: Sequence[str] = (),
    ):
        super().__init__()
        net, optimizer, scheduler, ema = plain(net), plain(optimizer), plain(scheduler) or None, plain(ema)
        # Every target is checked here, before anything is imported: these dicts may come from a checkpoint.
        check_targets({"net": net, "optimizer": optimizer, "scheduler": scheduler}, trusted_modules)
        # The trust comes from the command line of each run, never from a checkpoint: not a hyperparameter.
        self.save_hyperparameters(ignore=["trusted_modules"])
        self.trusted_modules = tuple(trusted_modules)
        network = instantiate(net, _convert_="all")
        init_weights(network, init, init_std, init_bias)
        self.net = nn.Sequential(Normalize(mean, std), network)
        self.l2, self.label_smoothing = l2, label_smoothing
        self.weights = [p for p in network.parameters() if p.ndim > 1]  # biases and BN excluded
        self.ema = EMA(self.net, ema["decay"]) if ema and ema.get("enabled") else None
        classes = net.get("num_classes", 10)
        self.val_acc, self.test_acc = (MulticlassAccuracy(classes, average="micro") for _ in range(2))
        # over every image, exact across DDP ranks; a NaN loss shows as NaN, without a host sync per batch to check
        self.val_loss, self.test_loss = (MeanMetric(nan_strategy="disable") for _ in range(2))
        self.train_sums = EpochSums()

    @property
    def inference_net(self) -> nn.Module:
        """What evaluation, checkpoints' users and exports run: the EMA weights when enabled."""
        return self.ema.net if self.ema is not None else self.net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for float images (N, 1, 28, 28) with pixels in [0, 1]."""
        return self.inference_net(x)

    def on_train_start(self):
        saved, self.resumed_sums = getattr(self, "resumed_sums", None), None
        resumed = saved is not None and saved["epoch"] == self.current_epoch
        self.train_sums.reset(self.current_epoch, self.device, saved if resumed else None)

    def on_train_epoch_start(self):
        if self.train_sums.epoch != self.current_epoch:  # a run resumed in mid-epoch keeps its sums
            self.train_sums.reset(self.current_epoch, self.device)

    def training_step(self, batch, batch_idx):
        images, labels = batch
        logits = self.net(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        self.train_sums.add(loss.detach(), logits.detach(), labels)  # the epoch's means, without a sync per step
        if self.logs_this_step():
            with torch.no_grad():
                accuracy = (logits.argmax(1) == labels).float().mean()
                self.log_dict({"train/loss_step": loss, "train/acc_step": accuracy}, prog_bar=True)
        return loss  # the L2 penalty's gradient is added in on_before_optimizer_step

    def on_before_optimizer_step(self, optimizer) -> None:
        """The L2 penalty's gradient, l2 * w, added to the weights' gradients: the same numbers as autograd's
        of l2 * 0.5 * sum(w**2) (tests/test_models.py), without building the penalty's graph each step, which
        cost more than the MLP's own step. Gradients are unscaled here and clipped after."""
        if self.l2:
            weights = [w for w in self.weights if w.grad is not None]  # a weight the loss did not reach: frozen
            with torch.no_grad():
                add_scaled_all([w.grad for w in weights], weights, self.l2)

    def logs_this_step(self) -> bool:
        """Whether the loggers write this step (every trainer.log_every_n_steps, and the last one when stopped
        early), as Lightning decides: a self.log call costs more than a small network's step, so only these log."""
        every = self.trainer.log_every_n_steps
        return bool(every) and ((self.global_step + 1) % every == 0 or self.trainer.should_stop)

    def on_train_epoch_end(self):
        loss, accuracy = self.train_sums.means()
        self.log_dict({"train/loss_epoch": loss, "train/acc_epoch": accuracy}, prog_bar=True, sync_dist=True)
        self.log_dict({"train/loss": loss, "train/acc": accuracy}, logger=False, sync_dist=True)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        batches = self.trainer.train_dataloader
        if isinstance(batches, TensorBatches) and 0 < batches.batches_done < len(batches):  # in mid-epoch
            checkpoint["train_totals"] = self.train_sums.state()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.resumed_sums = checkpoint.get("train_totals")  # used when training starts again

    def update_ema(self, optimizer, args, kwargs) -> None:
        """After each optimizer step (a hook of the optimizer, so before step checkpoints are saved)."""
        self.ema.update(self.net, self.global_step + 1)  # the step count is raised after the step

    def evaluate(self, batch, stage: str, accuracy: MulticlassAccuracy, loss: MeanMetric) -> None:
        images, labels = batch
        logits = self.inference_net(images)
        accuracy.update(logits, labels)
        loss.update(F.cross_entropy(logits, labels, reduction="none"))
        # metric objects: their sums and counts are synced across DDP ranks, so the split's values are exact (and a
        # logged tensor's sync would update an inference tensor outside inference mode, which torch forbids)
        self.log(f"{stage}/loss", loss, prog_bar=True)
        self.log(f"{stage}/acc", accuracy, prog_bar=True)

    def validation_step(self, batch, batch_idx):
        with torch.inference_mode():  # Lightning validates under no_grad inside fit; nothing here feeds training
            self.evaluate(batch, "val", self.val_acc, self.val_loss)

    def test_step(self, batch, batch_idx):
        self.evaluate(batch, "test", self.test_acc, self.test_loss)

    def configure_optimizers(self):
        optimizer = instantiate(self.hparams.optimizer, _convert_="all")(params=self.net.parameters())
        if self.ema is not None:
            optimizer.register_step_post_hook(self.update_ema)
        if not self.hparams.scheduler:
            return optimizer
        batches = len(self.trainer.datamodule.train_dataloader())
        steps_per_epoch = math.ceil(batches / self.trainer.accumulate_grad_batches)
        scheduler = instantiate(self.hparams.scheduler, _convert_="all")(
            optimizer, steps_per_epoch=steps_per_epoch, total_steps=int(self.trainer.estimated_stepping_batches)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
