"""mnistlab: train, compare and tune classic MNIST classifiers (Hydra + PyTorch Lightning).

Nothing heavy is imported here, so `train.py --help` answers at once.
"""

__version__ = "0.1.0"
