"""Input normalisation as the network's first layer, so exported models take plain [0, 1] pixels."""

import torch
from torch import nn


class Normalize(nn.Module):
    def __init__(self, mean: float, std: float):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean))
        self.register_buffer("std", torch.tensor(std))

    def forward(self, x):
        return (x - self.mean) / self.std
