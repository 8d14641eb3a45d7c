"""Fetch the four files of MNIST (or of Fashion-MNIST, KMNIST) from the public mirrors, each verified against its
published MD5 sum.

Plain urllib: no torchvision at run time (when it is installed, torchmetrics imports it and its models
with every `import lightning`, which slows every start)."""

import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path

MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
MD5 = {  # as published with the data set (and listed by torchvision.datasets.MNIST.resources)
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
FAMILY = {  # data.dataset -> (mirrors, MD5 sums), as torchvision.datasets.FashionMNIST and KMNIST list them
    "fashion_mnist": (
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
    ),
    "kmnist": (
        ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        {
            "train-images-idx3-ubyte.gz": "bdb82020997e1d708af4cf47b453dcf7",
            "train-labels-idx1-ubyte.gz": "e144d726b3acfaa3e44228e80efcd344",
            "t10k-images-idx3-ubyte.gz": "5c965bf0a639b31b8f53240b1b52f4d7",
            "t10k-labels-idx1-ubyte.gz": "7320c461ea6c1c855c0b718fb2a4b134",
        },
    ),
}
TIMEOUT_S = 30


def sources(dataset: str) -> tuple:
    """(mirrors, MD5 sums) of a data set; MNIST's are MIRRORS and MD5, looked up when called."""
    return (MIRRORS, MD5) if dataset == "mnist" else FAMILY[dataset]


def fetch(url: str, target: Path, md5: str) -> bool:
    """Download url to target through a temporary file; keep it only if its MD5 matches. The target's folder
    is created once the mirror answers: an offline try leaves no folder behind."""
    digest = hashlib.md5()
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(handle, "wb") as out:
                while chunk := response.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != md5:
                return False
            os.replace(partial, target)
            return True
        finally:
            Path(partial).unlink(missing_ok=True)


def missing_folders(path: Path) -> list:
    """path and those of its parents that do not exist, deepest first."""
    return [folder for folder in (path, *path.parents) if not folder.exists()]


def download_missing(raw_dir: Path, mirrors=None, sums=None) -> list:
    """Fetch each missing file from the first mirror that serves it intact (MNIST's by default); the names still
    missing. raw_dir is made only for a file that arrives: the folders made for nothing are removed again."""
    mirrors, sums = mirrors or MIRRORS, sums or MD5
    made = missing_folders(raw_dir)
    missing = []
    for name, md5 in sums.items():
        target = raw_dir / name
        if target.exists():
            continue
        for mirror in mirrors:
            try:
                if fetch(mirror + name, target, md5):
                    break
            except OSError:  # no network, a dead mirror, a timeout: try the next
                continue
        else:
            missing.append(name)
    for folder in made:  # deepest first; a folder that holds a file stays, and so do its parents
        try:
            folder.rmdir()
        except OSError:
            break
    return missing
