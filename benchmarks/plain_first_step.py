"""The floor of start-up: a plain PyTorch program's launch to the end of its first training step.

    python benchmarks/plain_first_step.py <your MNIST folder>   # prints {"first_step": <time.time()>}

It does what any program that trains the speedrun's network must do before its first step, and nothing more:
import torch, read the training images, build the network (written out here, without mnistlab) and Adam,
one step on the first batch of 64. startup.py and speedrun_race.py time it beside train.py: the difference is
what the framework adds. Building the optimizer imports torch._dynamo (torch's own doing), as it does in train.py.
"""

import gzip
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


def main(data_dir: Path) -> None:
    raw = data_dir / "MNIST" / "raw"
    images = gzip.decompress((raw / "train-images-idx3-ubyte.gz").read_bytes())[16:]  # IDX header: 16 bytes
    labels = gzip.decompress((raw / "train-labels-idx1-ubyte.gz").read_bytes())[8:]
    x = torch.frombuffer(bytearray(images), dtype=torch.uint8).view(-1, 1, 28, 28)
    y = torch.frombuffer(bytearray(labels), dtype=torch.uint8).long()
    net = nn.Sequential(
        nn.Conv2d(1, 24, 5, bias=False),
        nn.MaxPool2d(2),
        nn.BatchNorm2d(24),
        nn.ReLU(),
        nn.Conv2d(24, 32, 3, bias=False),
        nn.MaxPool2d(2),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(800, 256),
        nn.ReLU(),
        nn.Linear(256, 10),
    )
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2, fused=True)
    loss = F.cross_entropy(net(x[:64].float().div_(255)), y[:64])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    print(json.dumps({"first_step": time.time()}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
