"""Fetch the four MNIST files from the public mirrors, each verified against its published MD5 sum.

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
TIMEOUT_S = 30


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


def download_missing(raw_dir: Path, mirrors=None) -> list:
    """Fetch each missing file from the first mirror that serves it intact; the names still missing. raw_dir
    is made only for a file that arrives: the folders made for nothing are removed again."""
    mirrors = mirrors or MIRRORS
    made = missing_folders(raw_dir)
    missing = []
    for name, md5 in MD5.items():
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
