"""Exponential moving average of a network's weights, as TF's ExponentialMovingAverage."""

import copy

import torch
from torch import nn

from mnistlab.compat.torch import lerp_all


class EMA(nn.Module):
    """Holds an averaged copy of `net`; its weights go into the checkpoint with the model's."""

    def __init__(self, net: nn.Module, decay: float):
        super().__init__()
        self.decay = decay
        self.net = copy.deepcopy(net).requires_grad_(False).eval()

    def train(self, mode: bool = True):
        return super().train(False)  # the average is only ever evaluated: no dropout, frozen BN

    @torch.no_grad()
    def update(self, net: nn.Module, num_updates: int) -> None:
        decay = min(self.decay, (1 + num_updates) / (10 + num_updates))  # TF's warm-up
        averaged, current = list(self.net.parameters()), list(net.parameters())
        lerp_all(averaged, current, 1 - decay)
        for avg_buffer, buffer in zip(self.net.buffers(), net.buffers()):
            avg_buffer.copy_(buffer)  # BN statistics and normalisation constants: copied, not averaged

    def forward(self, x):
        return self.net(x)
