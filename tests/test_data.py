import gzip
import io
import random
import subprocess
import sys
import zlib

import pytest
import torch
from helpers import N_TEST, N_TRAIN, ROOT, VAL_SIZE, write_mnist

from mnistlab.data import unpack
from mnistlab.data.batches import EpochPermutation, TensorBatches
from mnistlab.data.datasets import FILES, training_files
from mnistlab.data.idx import read_idx
from mnistlab.data.mnist import MNISTDataModule
from mnistlab.errors import DataError


def test_splits_come_from_the_idx_files(mnist_dir):
    dm = MNISTDataModule(str(mnist_dir), batch_size=32, val_size=VAL_SIZE, download=False, seed=0)
    dm.setup()
    images = read_idx(mnist_dir / "MNIST/raw/train-images-idx3-ubyte.gz")
    train_x, _ = dm.splits["train"]
    val_x, _ = dm.splits["val"]
    assert images.shape == (N_TRAIN, 28, 28) and images.dtype == torch.uint8
    assert torch.equal(val_x, images[:VAL_SIZE]) and torch.equal(train_x, images[VAL_SIZE:])
    assert len(dm.splits["test"][1]) == N_TEST
    x, y = next(iter(dm.train_dataloader()))
    x, y = dm.on_after_batch_transfer((x, y), 0)
    assert x.shape == (32, 1, 28, 28) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert y.dtype == torch.int64


def test_epoch_permutation_is_seeded_per_epoch():
    a, b = EpochPermutation(100, seed=3), EpochPermutation(100, seed=3)
    first = a.indices()
    assert torch.equal(first, b.indices())
    a.set_epoch(1)
    assert not torch.equal(first, a.indices())
    assert sorted(a.indices().tolist()) == list(range(100))


def test_ddp_shards_are_disjoint_and_equal():
    labels = torch.arange(103)
    images = torch.zeros(103, 28, 28, dtype=torch.uint8)
    seen = []
    for rank in range(2):
        shard = TensorBatches(images, labels, 10, shuffle=True, seed=1, rank=rank, world_size=2)
        seen.append(torch.cat([y for _, y in shard]))
    assert len(seen[0]) == len(seen[1]) == 51
    assert not set(seen[0].tolist()) & set(seen[1].tolist())
    ordered = [
        torch.cat([y for _, y in TensorBatches(images, labels, 10, shuffle=False, rank=r, world_size=2)])
        for r in range(2)
    ]
    assert torch.equal(torch.cat(ordered), labels)  # evaluation sees every image once


def test_missing_files_without_download(tmp_path):
    dm = MNISTDataModule(str(tmp_path), download=False)
    with pytest.raises(DataError, match=r"MNIST/raw/.*data\.data_dir="):
        dm.prepare_data()


def test_offline_download_fails_with_clear_message_and_makes_no_folder(tmp_path, monkeypatch):
    monkeypatch.setattr("mnistlab.data.download.MIRRORS", ("http://127.0.0.1:9/",))  # nothing listens there
    dm = MNISTDataModule(str(tmp_path / "data"), download=True)
    with pytest.raises(DataError, match="download failed") as err:
        dm.prepare_data()
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []  # no data/MNIST/raw/ for nothing


def test_download_verifies_md5_and_falls_back_to_next_mirror(tmp_path, mirror, monkeypatch):
    import hashlib

    from mnistlab.data import download

    served, url = mirror
    write_mnist(tmp_path / "made")
    for source in (tmp_path / "made/MNIST/raw").iterdir():
        (served / source.name).write_bytes(source.read_bytes())
    sums = {name: hashlib.md5((served / name).read_bytes()).hexdigest() for name in download.MD5}
    monkeypatch.setattr(download, "MD5", sums)
    monkeypatch.setattr(download, "MIRRORS", ("http://127.0.0.1:9/", url))  # the first is dead
    dm = MNISTDataModule(str(tmp_path / "data"), download=True, val_size=10)
    dm.prepare_data()
    assert sorted(p.name for p in dm.raw_dir.iterdir()) == sorted(sums)  # no partial files left
    assert len(dm.load("test")[1]) > 0

    (served / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not the published file")
    (dm.raw_dir / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz missing .* download failed"):
        dm.prepare_data()
    assert sorted(p.name for p in dm.raw_dir.iterdir()) == sorted(set(sums) - {"t10k-labels-idx1-ubyte.gz"})


def test_corrupt_file_is_reported(tmp_path):
    write_mnist(tmp_path)
    path = tmp_path / "MNIST/raw/train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(b"\0\0\x08\x01\0\0\x02\x58" + b"\x01" * 10))  # says 600, has 10
    with pytest.raises(DataError, match="truncated"):
        read_idx(path)


def test_augmentation_only_while_training(mnist_dir):
    from types import SimpleNamespace

    dm = MNISTDataModule(
        str(mnist_dir), batch_size=16, val_size=VAL_SIZE, download=False, seed=0, augment={"shift": 3.0, "rotate": 20.0}
    )
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    plain, _ = dm.on_after_batch_transfer(batch, 0)
    dm.trainer = SimpleNamespace(training=True)
    augmented, _ = dm.on_after_batch_transfer(batch, 0)
    assert augmented.shape == plain.shape and not torch.allclose(augmented, plain)
    dm.trainer = SimpleNamespace(training=False)
    assert torch.equal(dm.on_after_batch_transfer(batch, 0)[0], plain)


def test_read_ahead_hands_out_what_its_thread_read_once(mnist_dir, monkeypatch):
    paths = [mnist_dir / "MNIST/raw" / name for name in FILES["train"]]
    direct = [read_idx(path) for path in paths]
    reads = []
    plain_read = unpack.read
    monkeypatch.setattr(unpack, "read", lambda path: reads.append(path) or plain_read(path))
    unpack.read_ahead(paths)
    for future in list(unpack._ahead.values()):
        future.result(timeout=30)  # the thread has read both files
    assert len(reads) == 2
    for path, expected in zip(paths, direct):
        assert torch.equal(read_idx(path), expected)
    assert len(reads) == 2  # the thread's bytes, not a second read
    read_idx(paths[0])
    assert len(reads) == 3  # taken once: the next read goes to the file


def test_read_ahead_reads_again_a_file_changed_since(tmp_path):
    write_mnist(tmp_path)
    path = tmp_path / "MNIST/raw" / FILES["train"][1]
    unpack.read_ahead([path])
    next(iter(unpack._ahead.values())).result(timeout=30)
    path.write_bytes(gzip.compress(b"\0\0\x08\x01\0\0\0\x03" + bytes([7, 8, 9])))  # replaced: 3 labels
    assert read_idx(path).tolist() == [7, 8, 9]


def test_read_ahead_gives_a_bad_file_the_same_error(tmp_path):
    write_mnist(tmp_path)
    path = tmp_path / "MNIST/raw/train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:300])  # a gzip cut short
    with pytest.raises(DataError) as direct:
        read_idx(path)
    unpack.read_ahead([path, tmp_path / "missing.gz"])  # a missing file is not read ahead: a download may come
    assert list(unpack._ahead) == [path.resolve()]
    with pytest.raises(DataError) as ahead:
        read_idx(path)
    assert str(ahead.value) == str(direct.value) and "unreadable or corrupt" in str(direct.value)


def test_read_ahead_only_for_our_data_module(tmp_path):
    ours = {"_target_": "mnistlab.data.mnist.MNISTDataModule", "dataset": "fashion_mnist", "data_dir": str(tmp_path)}
    assert training_files(ours) == [tmp_path / "FashionMNIST/raw" / name for name in FILES["train"]]
    assert training_files({**ours, "_target_": "my.DataModule"}) == []
    assert training_files({**ours, "dataset": "cifar"}) == []


WATCH_THREADS = """
import os, sys, threading, runpy
start = threading.Thread.start
def watched(self):
    if self.name == "mnistlab-read-ahead":  # the read starts: say whether torch has loaded yet, and stop
        print("read ahead; torch loaded:", "torch" in sys.modules, flush=True)
        os._exit(0)
    start(self)
threading.Thread.start = watched
sys.argv = ["train.py", *sys.argv[1:]]
runpy.run_path("train.py", run_name="__main__")
"""


def test_train_reads_ahead_before_torch_loads(mnist_dir, tmp_path):
    """train.py starts the read before it imports torch, so that it runs while torch and Lightning load."""
    run = [sys.executable, "-c", WATCH_THREADS, f"data.data_dir={mnist_dir}", f"hydra.run.dir={tmp_path}"]
    result = subprocess.run(run, capture_output=True, text=True, cwd=ROOT)
    assert result.stdout.strip() == "read ahead; torch loaded: False", result.stdout[-2000:] + result.stderr[-2000:]
    result = subprocess.run([*run, "data.batch_size=0"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and "read ahead" not in result.stdout  # a refused config reads nothing


def test_gunzip_agrees_with_pythons_gzip_on_damaged_files():
    """unpack.gunzip inflates a member in one zlib call; on a damaged file it gives gzip.GzipFile's bytes or
    refuses: never other bytes, never another error."""
    members = gzip.compress(bytes(range(256)) * 40, mtime=0) + gzip.compress(b"second member" * 50, mtime=0)
    rng = random.Random(0)
    read = 0
    for case in range(600):
        data = bytearray(members + b"\0" * rng.choice([0, 0, 7]))
        for _ in range(rng.choice([0, 1, 1, 2, 5])):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[: rng.randrange(len(data) + 1)]
        try:
            expected = gzip.GzipFile(fileobj=io.BytesIO(bytes(data))).read()
        except (OSError, EOFError, zlib.error):
            expected = None
        try:
            got = unpack.gunzip(bytes(data))
        except (EOFError, zlib.error):
            got = None
        assert got == expected, case  # (zlib would also refuse a header's reserved flag bits; none drawn here)
        read += got is not None
    assert 50 <= read <= 550  # both outcomes were tried
