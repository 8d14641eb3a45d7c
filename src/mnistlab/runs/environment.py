"""What a run ran on: <run>/env.json (command, git commit, versions, hardware) and <run>/requirements.txt
(every installed distribution), written when the run starts, so that a run that crashes has them too."""

import functools
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Optional

import torch

import mnistlab

ENV_FILE, REQUIREMENTS_FILE = "env.json", "requirements.txt"
PACKAGES = {"torch": "torch", "lightning": "lightning", "hydra": "hydra-core", "optuna": "optuna", "numpy": "numpy"}
PROJECT_ROOT = Path(mnistlab.__file__).resolve().parents[2]  # src/mnistlab/ in a checkout


def version(distribution: str) -> Optional[str]:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def git(*args: str) -> Optional[str]:
    try:
        done = subprocess.run(["git", "-C", str(PROJECT_ROOT), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):  # no git on this machine
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@functools.cache  # once per process: the code that runs is the code imported when it started
def git_state() -> dict:
    """The project's commit and whether its tree had changes; nulls for an installed (not checked-out) copy."""
    if not (PROJECT_ROOT / ".git").exists():  # not some other repository the package happens to sit in
        return {"git_commit": None, "git_dirty": None}
    commit, changes = git("rev-parse", "HEAD"), git("status", "--porcelain")
    return {"git_commit": commit, "git_dirty": bool(changes) if changes is not None else None}


def cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:  # not Linux
        return platform.processor() or platform.machine()
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


def environment() -> dict:
    cuda = torch.cuda.is_available()
    return {
        "command": shlex.join(["python", *sys.argv]),
        "python_executable": sys.executable,
        "cwd": str(Path.cwd()),
        "started": datetime.now().astimezone().isoformat(timespec="seconds"),
        **git_state(),
        "python": platform.python_version(),
        **{name: version(distribution) for name, distribution in PACKAGES.items()},
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        "torch_threads": torch.get_num_threads(),
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
    }


def name_and_version(dist: metadata.Distribution) -> tuple:
    """From the metadata's header lines only: Distribution.metadata parses the whole file, descriptions too."""
    header = (dist.read_text("METADATA") or dist.read_text("PKG-INFO") or "").split("\n\n", 1)[0]
    fields: dict = {}
    for line in header.splitlines():
        key, separator, value = line.partition(": ")
        if separator and key in ("Name", "Version") and key not in fields:
            fields[key] = value.strip()
    return fields.get("Name"), fields.get("Version")


@functools.cache  # a sweep's jobs share the process
def requirements() -> str:
    """name==version of every installed distribution (pip freeze's content, without a subprocess)."""
    pins = {f"{name}=={version}" for name, version in map(name_and_version, metadata.distributions()) if name}
    return "\n".join(sorted(pins, key=str.lower)) + "\n"


def write_environment(run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / ENV_FILE).write_text(json.dumps(environment(), indent=2))
    (run_dir / REQUIREMENTS_FILE).write_text(requirements())
