"""k-fold cross-validation: data.folds=K data.fold=i validates on fold i of a stratified split of the training
images; without data.folds the split is today's (the first val_size images)."""

import collections
import json
import statistics

import pytest
import torch
from helpers import N_TRAIN, VAL_SIZE, compose, quick_overrides, run_script
from omegaconf import OmegaConf

from mnistlab.data.folds import fold_of_each
from mnistlab.data.idx import read_idx
from mnistlab.data.mnist import MNISTDataModule
from mnistlab.errors import ConfigError, DataError

K = 5


def split(mnist_dir, fold, folds=K, split_seed=0, seed=0) -> dict:
    dm = MNISTDataModule(
        str(mnist_dir), val_size=VAL_SIZE, download=False, seed=seed, folds=folds, fold=fold, split_seed=split_seed
    )
    dm.setup("fit")
    return dm.splits


def rows(images: torch.Tensor) -> list:
    """Each image as bytes: the synthetic images are noise, no two alike."""
    return [image.numpy().tobytes() for image in images]


def test_the_folds_partition_the_training_images(mnist_dir):
    images = read_idx(mnist_dir / "MNIST/raw/train-images-idx3-ubyte.gz")
    everything = collections.Counter(rows(images))
    assert len(everything) == N_TRAIN  # so that counting bytes counts images
    seen = collections.Counter()
    for fold in range(K):
        splits = split(mnist_dir, fold)
        val, train = rows(splits["val"][0]), rows(splits["train"][0])
        assert collections.Counter(val) + collections.Counter(train) == everything  # each image on one side
        seen.update(val)
    assert seen == everything  # every image in exactly one fold's validation


def test_the_folds_are_stratified_within_one_image_per_class(mnist_dir):
    labels = read_idx(mnist_dir / "MNIST/raw/train-labels-idx1-ubyte.gz").long()
    per_class = torch.bincount(labels, minlength=10)
    counts = torch.stack([torch.bincount(split(mnist_dir, fold)["val"][1], minlength=10) for fold in range(K)])
    assert torch.equal(counts.sum(0), per_class)
    assert (counts.max(0).values - counts.min(0).values).max() <= 1  # class by class, fold against fold
    assert ((counts - per_class / K).abs() < 1).all()  # each near its share
    sizes = counts.sum(1)
    assert sizes.max() - sizes.min() <= 1


def test_a_fold_depends_on_the_split_seed_only(mnist_dir):
    first = split(mnist_dir, 2, seed=0)["val"]
    again = split(mnist_dir, 2, seed=7)["val"]  # another seed: another batch order, the same images
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    other = split(mnist_dir, 2, split_seed=1)["val"]
    assert not torch.equal(first[0], other[0])


def test_uneven_classes_and_sizes():
    labels = torch.tensor([0] * 7 + [1] * 3 + [2] * 1)
    fold = fold_of_each(labels, 3, split_seed=4)
    for label in range(3):
        counts = torch.bincount(fold[labels == label], minlength=3)
        assert counts.max() - counts.min() <= 1
    assert torch.bincount(fold, minlength=3).tolist() in ([4, 4, 3], [4, 3, 4], [3, 4, 4])
    with pytest.raises(ValueError):
        fold_of_each(labels, 12, split_seed=0)


def test_without_folds_the_split_is_the_first_val_size_images(mnist_dir):
    data = OmegaConf.to_object(compose(quick_overrides(mnist_dir, mnist_dir)).data)
    assert data.folds is None and data.fold == 0 and data.dataset == "mnist"
    images = read_idx(mnist_dir / "MNIST/raw/train-images-idx3-ubyte.gz")
    labels = read_idx(mnist_dir / "MNIST/raw/train-labels-idx1-ubyte.gz").long()
    splits = split(mnist_dir, 0, folds=None)
    assert torch.equal(splits["val"][0], images[:VAL_SIZE]) and torch.equal(splits["val"][1], labels[:VAL_SIZE])
    assert torch.equal(splits["train"][0], images[VAL_SIZE:]) and torch.equal(splits["train"][1], labels[VAL_SIZE:])


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["data.fold=2"], "data.fold needs data.folds (the number of folds), got 2"),
        (["data.folds=5", "data.fold=5"], "data.fold must be in [0, 4], got 5"),
        (["data.folds=1"], "data.folds must be in [2, 100], got 1"),
    ],
)
def test_impossible_folds_are_refused_in_one_line(overrides, message):
    with pytest.raises(ConfigError) as err:
        OmegaConf.to_object(compose(overrides).data)
    assert str(err.value) == message


def test_more_folds_than_images_is_refused(mnist_dir):
    with pytest.raises(DataError) as err:
        split(mnist_dir, 0, folds=N_TRAIN + 1)
    assert str(err.value) == f"data.folds={N_TRAIN + 1} data.fold=0: no such fold of {N_TRAIN} images"


@pytest.mark.process
def test_a_cross_validation_sweep_is_one_row_of_the_comparison(mnist_dir, tmp_path):
    sweep = tmp_path / "sweep"
    quick = [o for o in quick_overrides(mnist_dir, sweep) if not o.startswith("paths.")]
    trained = run_script(
        "train.py",
        "-m",
        "model=mlp",
        "model.net.hidden=[16]",
        "trainer.max_steps=4",
        "data.folds=3",
        "data.fold=0,1,2",
        *quick,
        f"hydra.sweep.dir={sweep}",
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "Over seeds and folds" in (sweep / "summary.md").read_text()
    saved = OmegaConf.load(sweep / "2" / ".hydra" / "config.yaml")
    assert (saved.data.folds, saved.data.fold, saved.data.split_seed) == (3, 2, 0)  # the split is recorded

    compared = run_script("compare.py", str(sweep))
    assert compared.returncode == 0, compared.stderr
    table = [line for line in compared.stdout.splitlines() if line.startswith("|")]
    assert len(table) == 3  # header, rule, one row
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    row = dict(zip(header, (cell.strip() for cell in table[2].strip("|").split("|"))))
    accuracies = [json.loads((sweep / str(job) / "metrics.json").read_text())["test/acc"] for job in range(3)]
    assert row["n"] == "3"
    assert row["test/acc"] == f"{statistics.fmean(accuracies):.4f} ± {statistics.stdev(accuracies):.4f}"
