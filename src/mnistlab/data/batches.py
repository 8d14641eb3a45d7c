"""Batches cut from in-memory tensors by indexing: no Dataset, no DataLoader, no workers."""

import math
from typing import Iterator, Optional, Tuple

import torch


class EpochPermutation:
    """A seeded permutation per epoch, sharded across DDP ranks; set_epoch like DistributedSampler."""

    def __init__(self, size: int, seed: int, rank: int = 0, world_size: int = 1):
        self.size, self.seed, self.rank, self.world_size = size, seed, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:  # Lightning calls this at each epoch start
        self.epoch = epoch

    def indices(self) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.size, generator=generator)
        per_rank = self.size // self.world_size  # equal shards, or DDP ranks wait on each other
        return order[self.rank * per_rank : (self.rank + 1) * per_rank]


class TensorBatches:
    """Iterates (images, labels) batches of a uint8 image tensor and its labels, on their device.

    shuffle=True draws a new permutation each epoch: Lightning calls `sampler.set_epoch` (it looks
    for `.sampler` and `.batch_sampler.sampler`, never for `.batch_sampler` itself);
    otherwise batches come in order, each DDP rank taking a contiguous shard.
    Stateful for Lightning: a checkpoint records how far into its epoch the batches got, and a run
    resumed from it continues with exactly the remaining batches of that epoch.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.sampler: Optional[EpochPermutation] = None
        self.batch_sampler = None  # as a DataLoader has, where Lightning looks for a sampler
        if shuffle:
            self.sampler = EpochPermutation(len(labels), seed, rank, world_size)
            self.num_samples = len(labels) // world_size
            self.shard = None
        else:
            per_rank = math.ceil(len(labels) / world_size)
            self.shard = slice(rank * per_rank, min((rank + 1) * per_rank, len(labels)))
            self.num_samples = self.shard.stop - self.shard.start
        self.batches_done = 0  # handed out so far in the current epoch
        self.resume_at: Optional[dict] = None

    def state_dict(self) -> dict:
        epoch = self.sampler.epoch if self.sampler is not None else 0
        return {"epoch": epoch, "batches_done": self.batches_done}

    def load_state_dict(self, state: dict) -> None:
        self.resume_at = state  # used by the next pass, if it is the same epoch

    def batches_to_skip(self) -> int:
        epoch = self.sampler.epoch if self.sampler is not None else 0
        resume_at, self.resume_at = self.resume_at, None
        return resume_at["batches_done"] if resume_at and resume_at["epoch"] == epoch else 0

    def __len__(self) -> int:
        return math.ceil(self.num_samples / self.batch_size)

    def __iter__(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        # A generator: this body runs at the first next(), after Lightning's set_epoch.
        self.batches_done = self.batches_to_skip()
        if self.sampler is None:
            images, labels = self.images[self.shard], self.labels[self.shard]
            for start in range(self.batches_done * self.batch_size, len(labels), self.batch_size):
                self.batches_done += 1
                yield images[start : start + self.batch_size], labels[start : start + self.batch_size]
        else:
            order = self.sampler.indices().to(self.labels.device)
            for batch in order.split(self.batch_size)[self.batches_done :]:
                self.batches_done += 1
                # index_select, not images[batch]: several times faster for a random batch on the CPU
                yield self.images.index_select(0, batch), self.labels.index_select(0, batch)
