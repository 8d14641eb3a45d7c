"""Multi-layer perceptron: 784 -> hidden... -> 10 with ReLU."""

from typing import Sequence

from torch import nn


class MLP(nn.Module):
    def __init__(self, hidden: Sequence[int] = (500,), dropout: float = 0.0, num_classes: int = 10):
        super().__init__()
        layers, width = [nn.Flatten()], 28 * 28
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)
