"""Can this CPU train the network in the precision asked for? A tiny probe of each kind of layer, run once per
process (cached), answers before training starts.

oneDNN, which runs torch's LSTM on a CPU, builds a bfloat16 LSTM only where the CPU has AVX512-BF16 (or AMX): on
an AVX2-only CPU (many AMD EPYC and laptop CPUs) `trainer.precision=bf16-mixed` fails at the first step with
"could not create a primitive descriptor for the LSTM forward propagation primitive". `ONEDNN_MAX_CPU_ISA=AVX2`
makes any x86 CPU answer so (how the tests reproduce it). GPUs are left to Lightning's and torch's own checks.
"""

import functools
from typing import Callable, Dict, Optional, Tuple

import torch
from torch import nn

from mnistlab.errors import ConfigError

# trainer.precision -> (dtype, autocast): the lower precisions Lightning trains in on a CPU (16-mixed as bf16-mixed)
LOW_PRECISIONS: Dict[str, Tuple[torch.dtype, bool]] = {
    "bf16-mixed": (torch.bfloat16, True),
    "bf16": (torch.bfloat16, True),
    "16-mixed": (torch.bfloat16, True),
    "16": (torch.bfloat16, True),
    "bf16-true": (torch.bfloat16, False),
    "16-true": (torch.float16, False),
}

# A layer whose low-precision kernels depend on the CPU -> a tiny instance of it and an input
PROBES: Dict[type, Callable[[], Tuple[nn.Module, torch.Tensor]]] = {
    nn.LSTM: lambda: (nn.LSTM(4, 4, batch_first=True), torch.randn(2, 3, 4)),
    nn.GRU: lambda: (nn.GRU(4, 4, batch_first=True), torch.randn(2, 3, 4)),
    nn.RNN: lambda: (nn.RNN(4, 4, batch_first=True), torch.randn(2, 3, 4)),
    nn.Conv2d: lambda: (nn.Conv2d(1, 2, 3, padding=1), torch.randn(2, 1, 5, 5)),
    nn.Linear: lambda: (nn.Linear(4, 3), torch.randn(2, 4)),
}


@functools.cache
def cpu_failure(layer: type, precision: str) -> Optional[str]:
    """None when a tiny `layer` runs forward and backward in `precision` on this CPU, else the error's first
    line. Cached: each layer and precision is tried once per process (about a millisecond)."""
    dtype, mixed = LOW_PRECISIONS[precision]
    try:
        with torch.random.fork_rng(devices=[]), torch.inference_mode(False), torch.enable_grad():
            module, inputs = PROBES[layer]()  # its weights drawn from a copy of the seeded generator
            if not mixed:
                module, inputs = module.to(dtype), inputs.to(dtype)
            with torch.autocast("cpu", dtype=dtype, enabled=mixed):
                output = module(inputs)
                output = output[0] if isinstance(output, tuple) else output
            output.float().sum().backward()
    except RuntimeError as err:
        return str(err).strip().split(". ")[0].splitlines()[0] if str(err).strip() else type(err).__name__
    return None


def precision_failure(model: nn.Module, precision, device: str) -> Optional[str]:
    """Why `model` cannot train in `precision` on `device` ("cpu", or anything else), in one line; None when it
    can, or when nothing here knows better (a precision without a probe, a GPU)."""
    precision = str(precision)
    if precision not in LOW_PRECISIONS or device != "cpu":
        return None
    layers = {type(module) for module in model.modules()} & set(PROBES)
    for layer in sorted(layers, key=lambda layer: layer.__name__):
        failure = cpu_failure(layer, precision)
        if failure is not None:
            dtype = str(LOW_PRECISIONS[precision][0]).removeprefix("torch.")
            return (
                f"trainer.precision={precision}: this CPU cannot run {layer.__name__} layers in {dtype} "
                f"({failure}): use trainer.precision=32-true"
            )
    return None


def trains_on_cpu(accelerator) -> bool:
    """Whether Lightning's `accelerator` (cpu, gpu, cuda, mps, auto, ...) puts the run on the CPU: auto does
    where neither CUDA nor MPS is available."""
    accelerator = str(accelerator or "auto")
    if accelerator == "auto":
        return not torch.cuda.is_available() and not torch.backends.mps.is_available()
    return accelerator == "cpu"


def check_precision(model: nn.Module, trainer_config) -> None:
    """Raises ConfigError (one `error:` line, before the Trainer is built) when the device of `trainer_config`
    (conf/trainer: accelerator, precision) cannot train `model` in its precision."""
    device = "cpu" if trains_on_cpu(trainer_config.get("accelerator", "auto")) else "accelerator"
    failure = precision_failure(model, trainer_config.get("precision", "32-true"), device)
    if failure is not None:
        raise ConfigError(failure)
