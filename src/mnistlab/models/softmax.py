"""Softmax regression: one linear layer, 784 -> 10 (the softmax itself is in the loss)."""

from torch import nn


class SoftmaxRegression(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.linear = nn.Linear(28 * 28, num_classes)

    def forward(self, x):
        return self.linear(x.flatten(1))
