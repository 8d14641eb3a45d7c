"""TF tutorial CNN: conv5x5x32-pool-conv5x5x64-pool-fc1024-dropout-fc10, 'same' padding.

Also the speedrun's smaller net (conf/experiment/speedrun.yaml): per-layer kernel sizes, 'valid' padding,
and max-pooling straight after each convolution, so that batch norm and ReLU see a quarter of the values.
"""

from typing import Sequence, Union

from torch import nn


class CNN(nn.Module):
    def __init__(
        self,
        channels: Sequence[int] = (32, 64),
        kernel_size: Union[int, Sequence[int]] = 5,  # one for all layers, or one per layer
        fc_size: int = 1024,
        dropout: float = 0.5,
        batch_norm: bool = False,
        padding: str = "same",  # or "valid": no padding, each convolution shrinks the image
        pool_first: bool = False,  # conv-pool-norm-ReLU instead of conv-norm-ReLU-pool
        num_classes: int = 10,
    ):
        super().__init__()
        kernels = [kernel_size] * len(channels) if isinstance(kernel_size, int) else list(kernel_size)
        layers, in_channels, side = [], 1, 28
        for out_channels, kernel in zip(channels, kernels):
            conv = nn.Conv2d(
                in_channels, out_channels, kernel, padding=kernel // 2 if padding == "same" else 0, bias=not batch_norm
            )
            norm = [nn.BatchNorm2d(out_channels)] if batch_norm else []
            if pool_first:
                layers += [conv, nn.MaxPool2d(2), *norm, nn.ReLU()]
            else:
                layers += [conv, *norm, nn.ReLU(), nn.MaxPool2d(2)]
            in_channels = out_channels
            side = (side if padding == "same" else side - kernel + 1) // 2
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
