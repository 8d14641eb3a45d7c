"""MNIST (or Fashion-MNIST, KMNIST: data.dataset) as a LightningDataModule holding each split as one uint8 tensor
on the training device."""

from pathlib import Path
from typing import Optional

import lightning as L
import torch

from mnistlab.data.augment import random_affine
from mnistlab.data.batches import TensorBatches
from mnistlab.data.datasets import DATASETS, FILES
from mnistlab.data.download import download_missing, sources
from mnistlab.data.folds import fold_of_each
from mnistlab.data.idx import read_idx
from mnistlab.data.unpack import forget
from mnistlab.errors import DataError

# The splits each stage of Lightning's uses (setup loads only those: evaluating needs no training images).
STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}


class MNISTDataModule(L.LightningDataModule):
    """Built from conf/data/mnist.yaml (its `_target_`): every key of that config is an argument here.

    mean and std are the input normalisation that the model folds in (conf/train.yaml: model.mean is
    ${data.mean}): the batches stay in [0, 1], and they are kept here as a description of the data.

    Validation is the first val_size training images, or with `folds` set, fold `fold` of a stratified split of
    the training images into that many folds, drawn from split_seed (mnistlab.data.folds)."""

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        val_size: int = 5000,
        download: bool = True,
        mean: float = 0.1307,
        std: float = 0.3081,
        seed: Optional[int] = None,
        augment: Optional[dict] = None,
        dataset: str = "mnist",
        folds: Optional[int] = None,
        fold: int = 0,
        split_seed: int = 0,
    ):
        super().__init__()
        if dataset not in DATASETS:
            raise DataError(f"data.dataset={dataset!r} is none of {', '.join(DATASETS)}")
        self.dataset, self.spec = dataset, DATASETS[dataset]
        self.folds, self.fold, self.split_seed = folds, fold, split_seed
        self.raw_dir = Path(data_dir) / self.spec.folder / "raw"
        self.data_dir = data_dir
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.val_size, self.download = val_size, download
        self.mean, self.std = mean, std
        self.augment = {"shift": 0.0, "rotate": 0.0, "scale": 0.0, **(augment or {})}
        self.seed = seed if seed is not None else int(torch.randint(2**31, ()).item())
        self.splits: dict = {}

    def missing_files(self) -> list:
        return [name for pair in FILES.values() for name in pair if not (self.raw_dir / name).exists()]

    def prepare_data(self) -> None:
        if self.missing_files() and self.download:
            download_missing(self.raw_dir, *sources(self.dataset))
        missing = self.missing_files()
        if missing:
            raise DataError(
                f"{self.spec.title} not found: {', '.join(missing)} missing in {self.raw_dir}/"
                f"{' and the download failed (offline?)' if self.download else ''}. "
                f"Copy the files there, or name the folder that holds {self.spec.folder}/raw/: data.data_dir=<folder>"
            )

    def load(self, split: str) -> tuple:
        images, labels = (read_idx(self.raw_dir / name) for name in FILES[split])
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(
                f"{self.raw_dir}: {split} images {tuple(images.shape)} do not match labels {tuple(labels.shape)}"
            )
        return images, labels.long()

    def setup(self, stage: Optional[str] = None) -> None:
        """Loads the splits `stage` uses (all three for None), once each."""
        wanted = STAGE_SPLITS.get(stage, ("train", "val", "test"))
        if all(split in self.splits for split in wanted):
            return
        self.prepare_data()  # a no-op when the files are there; gives the clear message when not
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        if self.trainer is not None:  # DDP: every rank cuts its shard of the same order (seed=null draws one each)
            self.seed = self.trainer.strategy.broadcast(self.seed)
        if ("train" in wanted or "val" in wanted) and "val" not in self.splits:
            images, labels = self.load("train")
            forget()  # read-ahead bytes nobody took (another folder's): not kept for the whole run
            if self.folds is None:
                if self.val_size >= len(labels):
                    raise DataError(f"data.val_size={self.val_size} leaves no training images (only {len(labels)})")
                v = self.val_size  # validation is the first val_size images, as TF's input_data did
                self.splits["train"] = (images[v:].to(device), labels[v:].to(device))
                self.splits["val"] = (images[:v].to(device), labels[:v].to(device))
            else:
                if not 2 <= self.folds <= len(labels) or not 0 <= self.fold < self.folds:
                    raise DataError(
                        f"data.folds={self.folds} data.fold={self.fold}: no such fold of {len(labels)} images"
                    )
                val = fold_of_each(labels, self.folds, self.split_seed) == self.fold  # both keep the files' order
                self.splits["train"] = (images[~val].to(device), labels[~val].to(device))
                self.splits["val"] = (images[val].to(device), labels[val].to(device))
        if "test" in wanted and "test" not in self.splits:
            test_images, test_labels = self.load("test")
            self.splits["test"] = (test_images.to(device), test_labels.to(device))

    def batches(self, split: str, batch_size: int, shuffle: bool) -> TensorBatches:
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        return TensorBatches(
            *self.splits[split], batch_size=batch_size, shuffle=shuffle, seed=self.seed, rank=rank, world_size=world
        )

    def train_dataloader(self) -> TensorBatches:
        return self.batches("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> TensorBatches:
        return self.batches("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> TensorBatches:
        return self.batches("test", self.eval_batch_size, shuffle=False)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        images, labels = batch  # uint8 (N, 28, 28) -> float (N, 1, 28, 28) in [0, 1], on the device
        images = images.unsqueeze(1).float().div_(255)
        training = self.trainer is not None and self.trainer.training
        if training and any(self.augment.values()):
            images = random_affine(images, self.augment["shift"], self.augment["rotate"], self.augment["scale"])
        return images, labels
