"""Helpers shared by the tests: a small learnable MNIST written as real IDX .gz files, and functions to
compose and run configs. pytest puts tests/ on sys.path (tests/conftest.py's folder, default import mode), so
the tests import these as `from helpers import compose, run_script` or `from helpers.tool_config import ...`."""

import gzip
import os
import stat
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"
TRAIN_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
TEST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
N_TRAIN, N_TEST, VAL_SIZE = 600, 200, 100


def write_idx(path: Path, array: np.ndarray) -> None:
    """IDX: two zero bytes, type 0x08 (ubyte), ndim, big-endian uint32 sizes, then the bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def synthetic_digits(n: int, seed: int) -> tuple:
    """Class c is a bright 6x4 block at its own place (2 rows x 5 columns) over dim noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 60, (n, 28, 28))
    for image, label in zip(images, labels):
        top, left = 4 + (label // 5) * 12 + rng.integers(-1, 2), 1 + (label % 5) * 5 + rng.integers(0, 2)
        image[top : top + 6, left : left + 4] = 255 - rng.integers(0, 40)
    return images, labels


def write_raw(data_dir: Path, folder: str, seeds: tuple = (0, 1)) -> Path:
    """Synthetic digits as the four IDX files of MNIST's layout in <data_dir>/<folder>/raw/ (train, test seeds)."""
    raw = data_dir / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for files, n, seed in ((TRAIN_FILES, N_TRAIN, seeds[0]), (TEST_FILES, N_TEST, seeds[1])):
        images, labels = synthetic_digits(n, seed)
        write_idx(raw / files[0], images)
        write_idx(raw / files[1], labels)
    return data_dir


def write_mnist(data_dir: Path) -> Path:
    """The synthetic digits in MNIST's folder, and in Fashion-MNIST's and KMNIST's (data=fashion_mnist | kmnist)."""
    for folder in ("MNIST", "FashionMNIST", "KMNIST"):
        write_raw(data_dir, folder)
    return data_dir


def quick_overrides(data_dir: Path, output_dir: Path) -> list:
    """Small, quiet runs on the synthetic data."""
    return [
        f"data.data_dir={data_dir}",
        f"data.val_size={VAL_SIZE}",
        "data.batch_size=32",
        "data.eval_batch_size=100",
        "data.download=false",
        f"paths.output_dir={output_dir}",
        "+trainer.enable_progress_bar=false",
        "+trainer.enable_model_summary=false",
        "trainer.log_every_n_steps=1",
        "trainer.max_epochs=1",
        "threads=1",
        "report=false",  # ~1 s of plotting a run; tests/test_report.py turns it on
    ]


def compose(overrides: list):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from mnistlab.settings.schema import register_schemas

    register_schemas()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return hydra_compose("train", overrides=overrides)


def run_script(*args: str, cwd: Path = ROOT, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def stand_in_slurm(tmp_path: Path) -> tuple:
    """(env, script): srun and sbatch stand-ins first on PATH; sbatch keeps the script it is given in `script`
    and refuses it, so nothing is submitted."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in {"srun": "exit 0", "sbatch": 'cp "$1" "$SBATCH_RECORD"; echo refused >&2; exit 1'}.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(stat.S_IRWXU)
    script = tmp_path / "sbatch.sh"
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SBATCH_RECORD": str(script)}, script
