"""How much memory a run held: the process's peak resident size, and what the largest parts of it were."""

import os
import resource
import sys
from pathlib import Path
from typing import Dict, Iterable

import torch

MIB = 2**20


def peak_resident_mib() -> float:
    """The most resident memory this process has held so far (Linux counts ru_maxrss in KiB, macOS in bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MIB if sys.platform == "darwin" else peak / 1024


def resident_mib() -> float:
    """The resident memory this process holds now (Linux's /proc); elsewhere its peak so far."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return peak_resident_mib()
    return pages * os.sysconf("SC_PAGE_SIZE") / MIB


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


def largest_parts(libraries: float, datamodule, model, optimizers) -> Dict[str, float]:
    """MiB of the libraries (what the process held before the run built anything), of the data set (every split
    held, as loaded: one copy), of the weights (with the EMA copy and buffers) and of the optimizer's state."""
    splits = getattr(datamodule, "splits", {})
    return {
        "libraries (torch, Lightning, ...)": libraries,
        "data set": tensors_mib(tensor for split in splits.values() for tensor in split),
        "model": tensors_mib([*model.parameters(), *model.buffers()]),
        "optimizer state": tensors_mib(optimizer_tensors(optimizers)),
    }
