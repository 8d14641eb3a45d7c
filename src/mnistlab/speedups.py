"""Speed-ups applied before fitting: no per-call NVML check without a GPU, channels_last and torch.compile."""

import os

import torch
from torch import nn


def cheap_cuda_checks() -> None:
    """Lightning sets PYTORCH_NVML_BASED_CUDA_CHECK=1 (keeps fork safe on GPU machines); with it, on a machine
    without a GPU, every torch.cuda.is_available() loads the NVML library anew (~30 us), and torch's
    Adam.step asks several times a step: ~0.2 ms a step, a quarter of a softmax step. With no GPU there
    is nothing to keep fork-safe, so the variable goes and the check becomes a cached runtime call."""
    if not torch.cuda.is_available():
        os.environ.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)


def has_conv(net: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in net.modules())


def apply_speedups(classifier: nn.Module, compile: bool = False) -> None:
    """channels_last for convolutional networks on every device (cuDNN's fast layout, and oneDNN's: the
    speedrun CNN's training step is 1.33x faster on the 2-core CPU, benchmarks/layout.py; weights only: a
    1-channel input has the same layout either way); `compile` compiles the training network (and the EMA
    copy) in place, so the checkpoint's parameter names do not change."""
    if has_conv(classifier.net):
        classifier.to(memory_format=torch.channels_last)  # Lightning's later .to(device) keeps the layout
    if compile:
        classifier.net.compile()
        if classifier.ema is not None:
            classifier.ema.net.compile()
