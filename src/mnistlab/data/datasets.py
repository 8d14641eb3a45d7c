"""The MNIST family: data sets of 28 x 28 grey images in ten classes, in the same four IDX files. `data.dataset`
names one; its files live in <data_dir>/<folder>/raw/ (torchvision's layout, so its downloads serve as they are).
Their mirrors and published checksums are in mnistlab.data.download. Imports nothing heavy."""

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Tuple

FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


@dataclass(frozen=True)
class Dataset:
    title: str  # as its authors write it
    folder: str
    classes: Tuple[str, ...]  # the names of labels 0 to 9


DATASETS = {
    "mnist": Dataset("MNIST", "MNIST", tuple("0123456789")),
    "fashion_mnist": Dataset(
        "Fashion-MNIST",
        "FashionMNIST",
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
    # Kuzushiji-MNIST: ten cursive hiragana, by their romanised readings
    "kmnist": Dataset("Kuzushiji-MNIST", "KMNIST", ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")),
}


def training_files(data: Mapping) -> list:
    """The training files that a data config (conf/data/<name>.yaml) reads, if it builds our MNISTDataModule."""
    if data.get("_target_") != "mnistlab.data.mnist.MNISTDataModule" or data.get("dataset") not in DATASETS:
        return []
    raw = Path(str(data.get("data_dir"))) / DATASETS[data["dataset"]].folder / "raw"
    return [raw / name for name in FILES["train"]]
