"""The MNIST family: data=fashion_mnist and data=kmnist read the same IDX files from their own folders, check
downloads against their published MD5 sums, and name their classes in the report. Tested on synthetic files."""

import gzip
import hashlib
import importlib.util

import pytest
import torch
import yaml
from helpers import N_TEST, N_TRAIN, TEST_FILES, TRAIN_FILES, quick_overrides, synthetic_digits, write_raw

from mnistlab.data import download
from mnistlab.data.datasets import DATASETS
from mnistlab.data.mnist import MNISTDataModule
from mnistlab.errors import DataError

FAMILY = [("fashion_mnist", "FashionMNIST", "Fashion-MNIST"), ("kmnist", "KMNIST", "Kuzushiji-MNIST")]


def write_family(data_dir, folder):
    """Synthetic files of MNIST's layout in <data_dir>/<folder>/raw/, other digits than the MNIST folder's."""
    return write_raw(data_dir, folder, seeds=(2, 3))


@pytest.mark.parametrize("dataset, folder, title", FAMILY)
def test_loaded_from_their_own_folder(dataset, folder, title, tmp_path):
    write_family(tmp_path, folder)
    dm = MNISTDataModule(str(tmp_path), val_size=100, download=False, seed=0, dataset=dataset)
    dm.setup()
    assert dm.raw_dir == tmp_path / folder / "raw"
    assert dm.splits["train"][0].shape == (N_TRAIN - 100, 28, 28) and len(dm.splits["test"][1]) == N_TEST
    _, labels = synthetic_digits(N_TEST, 3)
    assert torch.equal(dm.splits["test"][1], torch.as_tensor(labels))


@pytest.mark.parametrize("dataset, folder, title", FAMILY)
def test_missing_files_offline_are_one_line_naming_the_data_set(dataset, folder, title, tmp_path, monkeypatch):
    monkeypatch.setitem(download.FAMILY, dataset, (("http://127.0.0.1:9/",), download.FAMILY[dataset][1]))
    dm = MNISTDataModule(str(tmp_path / "data"), download=True, dataset=dataset)
    with pytest.raises(DataError) as err:
        dm.prepare_data()
    message = str(err.value)
    assert message.startswith(f"{title} not found: train-images-idx3-ubyte.gz, ")
    assert f"{folder}/raw/ and the download failed (offline?)" in message
    assert message.endswith(f"name the folder that holds {folder}/raw/: data.data_dir=<folder>")
    assert "\n" not in message and list(tmp_path.iterdir()) == []  # no folder made for nothing


def test_a_download_is_kept_only_with_its_checksum(tmp_path, mirror, monkeypatch):
    served, url = mirror
    write_family(tmp_path / "made", "FashionMNIST")
    for source in (tmp_path / "made/FashionMNIST/raw").iterdir():
        (served / source.name).write_bytes(source.read_bytes())
    sums = {name: hashlib.md5((served / name).read_bytes()).hexdigest() for name in (*TRAIN_FILES, *TEST_FILES)}
    sums["t10k-labels-idx1-ubyte.gz"] = download.FAMILY["fashion_mnist"][1]["t10k-labels-idx1-ubyte.gz"]
    monkeypatch.setitem(download.FAMILY, "fashion_mnist", (("http://127.0.0.1:9/", url), sums))
    dm = MNISTDataModule(str(tmp_path / "data"), download=True, dataset="fashion_mnist")
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz missing .* download failed"):
        dm.prepare_data()  # the served labels are not the published file: refused
    assert sorted(p.name for p in dm.raw_dir.iterdir()) == sorted(set(sums) - {"t10k-labels-idx1-ubyte.gz"})


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is None, reason="compares with torchvision's lists")
@pytest.mark.parametrize("dataset, name", [("fashion_mnist", "FashionMNIST"), ("kmnist", "KMNIST")])
def test_checksums_mirrors_and_classes_are_the_published_ones(dataset, name):
    import torchvision.datasets

    published = getattr(torchvision.datasets, name)
    mirrors, sums = download.FAMILY[dataset]
    assert sums == dict(published.resources) and list(mirrors) == list(published.mirrors)
    assert list(DATASETS[dataset].classes) == list(published.classes) and DATASETS[dataset].folder == name
    assert download.MD5 == dict(torchvision.datasets.MNIST.resources)


def test_a_damaged_file_is_refused_in_one_line(tmp_path):
    write_family(tmp_path, "KMNIST")
    damaged = tmp_path / "KMNIST/raw/t10k-images-idx3-ubyte.gz"
    damaged.write_bytes(gzip.compress(b"\0\0\x08\x03\0\0\0\xc8\0\0\0\x1c\0\0\0\x1c" + b"\x07" * 100))
    dm = MNISTDataModule(str(tmp_path), download=False, dataset="kmnist")
    with pytest.raises(DataError) as err:
        dm.setup("test")
    assert str(err.value) == f"{damaged} is truncated: header says (200, 28, 28), found 100 bytes"
    damaged.write_bytes(damaged.read_bytes()[:20])  # a download cut short: no gzip end
    with pytest.raises(DataError) as err:
        MNISTDataModule(str(tmp_path), download=False, dataset="kmnist").setup("test")
    assert str(err.value).startswith(f"{damaged} is unreadable or corrupt (") and "\n" not in str(err.value)


def test_fashion_mnist_trains_and_its_report_names_the_classes(tmp_path, in_process):
    write_family(tmp_path, "FashionMNIST")
    run_dir = tmp_path / "run"
    quick = [o for o in quick_overrides(tmp_path, run_dir) if o != "report=false"]
    result = in_process(
        "train.py", "data=fashion_mnist", "model=mlp", "model.net.hidden=[16]", *quick, f"hydra.run.dir={run_dir}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    saved = yaml.safe_load((run_dir / ".hydra/config.yaml").read_text())["data"]
    assert (saved["dataset"], saved["mean"], saved["std"]) == ("fashion_mnist", 0.286, 0.353)
    report = (run_dir / "report.md").read_text()
    assert (
        "| class | T-shirt/top | Trouser | Pullover | Dress | Coat | Sandal | Shirt | Sneaker | Bag | Ankle boot |"
        in (report)
    )
    lines = (run_dir / "test_predictions.csv").read_text().splitlines()
    _, labels = synthetic_digits(N_TEST, 3)
    assert lines[0] == "label,predicted" and [int(line.split(",")[0]) for line in lines[1:]] == labels.tolist()
