"""How much memory a run held: the process's peak resident size, and what the largest parts of it were."""

import resource
import sys
from typing import Dict, Iterable

import torch

MIB = 2**20


def peak_resident_mib() -> float:
    """The most resident memory this process has held so far (Linux counts ru_maxrss in KiB, macOS in bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MIB if sys.platform == "darwin" else peak / 1024


def tensors_mib(tensors: Iterable[torch.Tensor]) -> float:
    """The bytes of distinct storages (a view of a tensor counted once with it)."""
    storages = {}
    for tensor in tensors:
        if isinstance(tensor, torch.Tensor) and tensor.device.type != "meta":
            storage = tensor.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values()) / MIB


def optimizer_tensors(optimizers) -> list:
    return [value for optimizer in optimizers for state in optimizer.state.values() for value in state.values()]


def largest_parts(datamodule, model, optimizers) -> Dict[str, float]:
    """MiB of the data set (every split held, as loaded: one copy), of the weights (with the EMA copy, buffers
    and metrics' states) and of the optimizer's state."""
    splits = getattr(datamodule, "splits", {})
    return {
        "data set": tensors_mib(tensor for split in splits.values() for tensor in split),
        "model": tensors_mib([*model.parameters(), *model.buffers()]),
        "optimizer state": tensors_mib(optimizer_tensors(optimizers)),
    }
