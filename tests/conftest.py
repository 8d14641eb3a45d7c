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


@pytest.fixture
def mirror(tmp_path):
    """A local HTTP mirror serving the files of tmp_path/served."""
    import functools
    import http.server
    import threading

    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
