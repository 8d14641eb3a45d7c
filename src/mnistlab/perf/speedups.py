"""Speed-ups applied before fitting: no per-call NVML check without a GPU, no full garbage collections
over start-up's objects, channels_last and torch.compile."""

import gc
import os

import lightning as L
import torch
from torch import nn


def cheap_cuda_checks() -> None:
    """Lightning sets PYTORCH_NVML_BASED_CUDA_CHECK=1 (keeps fork safe on GPU machines); with it, on a machine
    without a GPU, every torch.cuda.is_available() loads the NVML library anew, and torch's Adam.step asks
    several times a step: a sizeable part of a small network's step. With no GPU there is nothing to keep
    fork-safe, so the variable goes and the check becomes a cached runtime call."""
    if not torch.cuda.is_available():
        os.environ.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)


def has_conv(net: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in net.modules())


def apply_speedups(classifier: nn.Module, compile: bool = False) -> None:
    """channels_last for convolutional networks on every device (cuDNN's fast layout, and oneDNN's: a faster
    training step on a CPU too, benchmarks/layout.py measures it; weights only: a 1-channel input has the same
    layout either way); `compile` compiles the training network (and the EMA copy) in place, so the
    checkpoint's parameter names do not change."""
    if has_conv(classifier.net):
        classifier.to(memory_format=torch.channels_last)  # Lightning's later .to(device) keeps the layout
    if compile:
        classifier.net.compile()
        if classifier.ema is not None:
            classifier.ema.net.compile()


class FreezeStartupObjects(L.Callback):
    """Moves every object that exists when fitting starts (the imported torch, Lightning and Hydra, the
    config, the data) out of the garbage collector's reach while fitting. Python's full collections
    otherwise walk all of them, each a pause as long as many training steps, the first one in the first
    logging step (docs/performance.md). Unfrozen when fitting ends or fails, so that a multirun's next job
    can free this one's objects."""

    def on_fit_start(self, trainer, pl_module):
        gc.freeze()

    def on_fit_end(self, trainer, pl_module):
        gc.unfreeze()

    def on_exception(self, trainer, pl_module, exception):
        gc.unfreeze()
