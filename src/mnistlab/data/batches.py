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

    shuffle=True draws a new permutation each epoch (through `batch_sampler.set_epoch`);
    otherwise batches come in order, each DDP rank taking a contiguous shard.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int,
                 shuffle: bool, seed: int = 0, rank: int = 0, world_size: int = 1):
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.batch_sampler: Optional[EpochPermutation] = None
        if shuffle:
            self.batch_sampler = EpochPermutation(len(labels), seed, rank, world_size)
            self.num_samples = len(labels) // world_size
            self.shard = None
        else:
            per_rank = math.ceil(len(labels) / world_size)
            self.shard = slice(rank * per_rank, min((rank + 1) * per_rank, len(labels)))
            self.num_samples = self.shard.stop - self.shard.start

    def __len__(self) -> int:
        return math.ceil(self.num_samples / self.batch_size)

    def __iter__(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        if self.batch_sampler is None:
            images, labels = self.images[self.shard], self.labels[self.shard]
            for start in range(0, len(labels), self.batch_size):
                yield images[start : start + self.batch_size], labels[start : start + self.batch_size]
        else:
            order = self.batch_sampler.indices().to(self.labels.device)
            for batch in order.split(self.batch_size):
                yield self.images[batch], self.labels[batch]
