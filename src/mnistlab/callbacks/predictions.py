"""A model's predictions on a whole split, kept while the test (or eval.py's validation) runs: the confusion
matrix, per-class accuracy, the most confused pairs and the most confident mistakes, with no second pass
over the data (a second pass would double the CNN's test time on a CPU)."""

from dataclasses import dataclass
from typing import List, Optional, Tuple

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn


@dataclass
class Predictions:
    logits: torch.Tensor  # (N, classes) float32, on the CPU, in the split's order
    labels: torch.Tensor  # (N,) int64
    images: torch.Tensor  # (N, 28, 28) uint8, as in the data set

    @property
    def predicted(self) -> torch.Tensor:
        return self.logits.argmax(1)

    @property
    def classes(self) -> int:
        return self.logits.shape[1]

    def accuracy(self) -> float:
        return (self.predicted == self.labels).float().mean().item()

    def confusion(self) -> torch.Tensor:
        """(classes, classes) counts: rows are the true class, columns the predicted one."""
        n = self.classes
        return torch.bincount(self.labels * n + self.predicted, minlength=n * n).reshape(n, n)

    def per_class(self) -> List[Tuple[int, int, int]]:
        """(class, correct, images of that class) for each class."""
        confusion = self.confusion()
        return [(c, int(confusion[c, c]), int(confusion[c].sum())) for c in range(self.classes)]

    def most_confused(self, k: int = 10) -> List[Tuple[int, int, int]]:
        """The k most frequent (true, predicted, count) mistakes, most frequent first."""
        off_diagonal = self.confusion().fill_diagonal_(0)
        counts, flat = off_diagonal.flatten().sort(descending=True, stable=True)
        n = self.classes
        return [(int(i) // n, int(i) % n, int(c)) for c, i in zip(counts[:k], flat[:k]) if c > 0]

    def mistakes(self, k: int = 25) -> List[Tuple[int, int, int, float]]:
        """(index, true, predicted, probability of the prediction) of the k most confident mistakes."""
        probability, predicted = self.logits.softmax(1).max(1)
        wrong = (predicted != self.labels).nonzero().flatten()
        order = probability[wrong].sort(descending=True, stable=True).indices[:k]
        return [(int(i), int(self.labels[i]), int(predicted[i]), float(probability[i])) for i in wrong[order]]


def gather_in_rank_order(trainer: "L.Trainer", rows: torch.Tensor) -> torch.Tensor:
    """Every DDP rank's rows, rank after rank: evaluation shards are contiguous, so this is the split's order.
    Ranks may hold different numbers of rows (the last shard is shorter): padded for all_gather."""
    if trainer.world_size == 1:
        return rows
    sizes = trainer.strategy.all_gather(torch.tensor(len(rows), device=rows.device)).tolist()
    padded = rows.new_zeros((max(sizes), *rows.shape[1:]))
    padded[: len(rows)] = rows
    everything = trainer.strategy.all_gather(padded)
    return torch.cat([part[:size] for part, size in zip(everything, sizes)])


class RecordPredictions(L.Callback):
    """Keeps the inference network's logits on every test batch (and on eval.py's validation batches, not
    fit's), with the batch's labels and images: `predictions` once that stage has ended."""

    def __init__(self) -> None:
        self.predictions: Optional[Predictions] = None
        self.parts: dict = {}
        self.hook = None

    def start(self, pl_module: L.LightningModule) -> None:
        self.parts = {"logits": [], "labels": [], "images": []}
        # the logits test_step computes, read as they pass rather than computed again
        self.hook = pl_module.inference_net.register_forward_hook(
            lambda module, inputs, logits: self.parts["logits"].append(logits.detach().float())
        )

    def keep(self, batch) -> None:
        images, labels = batch  # after on_after_batch_transfer: (N, 1, 28, 28) floats k / 255
        self.parts["labels"].append(labels)
        self.parts["images"].append(images[:, 0].mul(255).round().to(torch.uint8))

    def finish(self, trainer: "L.Trainer") -> None:
        self.hook.remove()
        logits, labels, images = (
            gather_in_rank_order(trainer, torch.cat(self.parts[name])).cpu() for name in ("logits", "labels", "images")
        )
        self.predictions = Predictions(logits, labels, images)
        self.parts = {}

    def on_test_epoch_start(self, trainer, pl_module):
        self.start(pl_module)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self.keep(batch)

    def on_test_epoch_end(self, trainer, pl_module):
        self.finish(trainer)

    def on_validation_epoch_start(self, trainer, pl_module):
        if trainer.state.fn == TrainerFn.VALIDATING:
            self.start(pl_module)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if trainer.state.fn == TrainerFn.VALIDATING:
            self.keep(batch)

    def on_validation_epoch_end(self, trainer, pl_module):
        if trainer.state.fn == TrainerFn.VALIDATING:
            self.finish(trainer)
