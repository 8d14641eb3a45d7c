"""The epoch's training loss and accuracy without a host sync per step (Lightning's on_epoch logging syncs and
costs more per step than a small network's step on a CPU: docs/performance.md).

Each step's (loss, logits, labels) is kept on the device and added into the sums every SUM_EVERY steps and at the
epoch's end, so that the float sums group the same steps however often the run logs or saves checkpoints. A
checkpoint taken in mid-epoch keeps them (`state`), so a run resumed from it logs the same train/*_epoch values as
one never stopped."""

from typing import Optional, Tuple

import torch

SUM_EVERY = 64  # training steps between updates of the sums


class EpochSums:
    def __init__(self) -> None:
        self.epoch, self.seen, self.loss, self.correct, self.unsummed = -1, 0, None, None, []

    def reset(self, epoch: int, device: torch.device, saved: Optional[dict] = None) -> None:
        """Zero sums for `epoch`, or those `saved` in a mid-epoch checkpoint of it."""
        zero = torch.zeros((), device=device)
        self.epoch, self.seen = epoch, saved["seen"] if saved else 0
        self.loss = saved["loss"].to(device) if saved else zero
        self.correct = saved["correct"].to(device) if saved else zero.clone()
        self.unsummed = [tuple(t.to(device) for t in step) for step in saved.get("unsummed", [])] if saved else []

    def add(self, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """One step's outputs (detached): kept, and added in with the others every SUM_EVERY steps."""
        self.unsummed.append((loss, logits, labels))
        if len(self.unsummed) == SUM_EVERY:
            self.sum_steps()

    def sum_steps(self) -> None:
        """A few tensor ops for many steps, rather than five each step."""
        if self.unsummed:
            losses, logits, labels = zip(*self.unsummed)
            sizes = [len(batch) for batch in labels]
            self.loss += (torch.stack(losses) * torch.tensor(sizes, device=self.loss.device)).sum()
            self.correct += (torch.cat(logits).argmax(1) == torch.cat(labels)).sum()
            self.seen += sum(sizes)
            self.unsummed = []

    def means(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """The epoch's mean loss and accuracy so far (every step added in)."""
        self.sum_steps()
        return self.loss / self.seen, self.correct / self.seen

    def state(self) -> dict:
        """What a mid-epoch checkpoint keeps (checked when read back: mnistlab.received.checkpoint)."""
        return {
            "epoch": self.epoch,
            "loss": self.loss.cpu(),
            "correct": self.correct.cpu(),
            "seen": self.seen,
            "unsummed": [tuple(t.cpu() for t in step) for step in self.unsummed],
        }
