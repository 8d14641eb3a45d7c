"""Pytest fixtures and hooks only; the helpers the tests share are in tests/helpers/ (`from helpers import ...`).

With pytest's default import mode this file's folder, tests/, is put first on sys.path, which makes `helpers`
importable by the test modules."""

from pathlib import Path

import pytest
from helpers import write_mnist


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory) -> Path:
    """A small learnable MNIST (tests/helpers: write_mnist), written once for the session."""
    return write_mnist(tmp_path_factory.mktemp("data"))
