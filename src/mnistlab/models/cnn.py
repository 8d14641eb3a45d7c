"""TF tutorial CNN: conv5x5x32-pool-conv5x5x64-pool-fc1024-dropout-fc10, 'same' padding."""

from typing import Sequence

from torch import nn


class CNN(nn.Module):
    def __init__(
        self,
        channels: Sequence[int] = (32, 64),
        kernel_size: int = 5,
        fc_size: int = 1024,
        dropout: float = 0.5,
        batch_norm: bool = False,
        num_classes: int = 10,
    ):
        super().__init__()
        layers, in_channels, side = [], 1, 28
        for out_channels in channels:
            layers.append(
                nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=not batch_norm)
            )
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers += [nn.ReLU(), nn.MaxPool2d(2)]
            in_channels, side = out_channels, side // 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_channels * side * side, fc_size),
            nn.ReLU(),
            nn.Dropout(dropout),  # active only in training mode
            nn.Linear(fc_size, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))
