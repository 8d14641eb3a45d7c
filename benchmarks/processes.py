"""One process timed from launch to exit, with its own peak memory: what the whole-process benchmarks share.

Linux counts the parent's resident size at fork into a child's peak: the calling process stays small (no torch).
"""

import os
import subprocess
import tempfile
import time
from pathlib import Path


def timed(command: list, cwd: Path) -> tuple:
    """(seconds, stdout, peak resident MiB) of one process: its own peak, from the kernel's record of it (wait4)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if process.returncode != 0:
        raise SystemExit(f"error: {' '.join(command)} failed:\n{stderr[-2000:]}")
    return seconds, stdout, usage.ru_maxrss / 1024  # KiB on Linux
