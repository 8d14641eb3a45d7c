"""Pytest fixtures and hooks only; the helpers the tests share are in tests/helpers/ (`from helpers import ...`).

With pytest's default import mode this file's folder, tests/, is put first on sys.path, which makes `helpers`
importable by the test modules."""

import os
import subprocess
from pathlib import Path

import pytest
from helpers import ROOT, attack, write_mnist


def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto` (pyproject.toml's addopts): a worker per core, at most 4, each a whole test file at a time
    (--dist loadfile: a module's fixtures run once). Each worker imports torch and Lightning (~1 GB); `-n 0` runs
    the tests in this process."""
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


@pytest.fixture(scope="session", autouse=True)
def end_the_shared_worker():
    """The in-process worker (tests/helpers/attack.py) ends with the session, as a process ends: its line coverage
    is written then, in time for pytest-cov's report."""
    yield
    attack.close_shared_worker()


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory) -> Path:
    """A small learnable MNIST (tests/helpers: write_mnist), written once for the session."""
    return write_mnist(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def in_process(tmp_path_factory):
    """in_process("eval.py", "ckpt_path=...", cwd=...): `python eval.py ...` run in the attack tables' shared worker
    (tests/helpers/attack.py: the entry point's `__main__`, its output captured, the process state put back after
    it), as a CompletedProcess. For tests about what a tool does, not about its process (signals, exit on a kill)."""
    worker = attack.shared_worker(tmp_path_factory.getbasetemp() / "attack-logs")

    def run(tool: str, *args: str, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess:
        result = worker.run(attack.plain_job(tool, list(args), cwd, tmp_path_factory.mktemp("in-process"), timeout))
        if result.get("crash"):
            pytest.fail(f"the in-process worker: {result['crash']}\n{result['stderr'][-3000:]}")
        return subprocess.CompletedProcess([tool, *args], result["rc"], result["stdout"], result["stderr"])

    return run


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, mnist_dir) -> Path:
    """A finished train.py run, made once (tests/helpers/attack.py: BASE_RUN, a 16-unit MLP, 3 steps): copy it
    before changing it."""
    worker = attack.shared_worker(tmp_path_factory.getbasetemp() / "attack-logs")
    return attack.base_artifacts(tmp_path_factory.getbasetemp(), mnist_dir, worker).run


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
