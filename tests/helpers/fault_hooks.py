"""Faults injected into a training subprocess, for the fault-injection and full-disk tests; nothing of it is in the
package. Run train.py through it, the faults chosen by environment variables:

    python -m helpers.fault_hooks train.py key=value ...      (tests/ on PYTHONPATH)

MNISTLAB_KILL_AT_STEP=N[:W]  SIGKILL after N optimizer steps, as the next training batch starts (W=batch, the default),
                             as the next validation starts (W=validation) or as the final test starts (W=test).
MNISTLAB_KILL_IN_SAVE=N:F[:P] SIGKILL part-way through writing the first checkpoint of step N or later (whose file
                             name starts with P, if given), after a fraction F (0 <= F < 1) of its bytes: torch.save
                             itself is writing when the process dies.
MNISTLAB_DISK_FULL_AFTER=N   the checkpoint writes after the first N fail as on a full disk: a write raises ENOSPC
                             after half of the file's bytes, as the operating system's would.

Checkpoint writes are recognised by ValidatedCheckpointIO's temporary file name (.<name>.ckpt.<pid>.tmp), so the
package's own save path runs up to the fault."""

import errno
import io
import os
import runpy
import signal
import sys
from pathlib import Path

from helpers.helper_callbacks import SignalAtStep

KILL_AT_STEP = "MNISTLAB_KILL_AT_STEP"
KILL_IN_SAVE = "MNISTLAB_KILL_IN_SAVE"
DISK_FULL_AFTER = "MNISTLAB_DISK_FULL_AFTER"
FAULTS = (KILL_AT_STEP, KILL_IN_SAVE, DISK_FULL_AFTER)


def is_checkpoint_write(file) -> bool:
    name = os.path.basename(str(getattr(file, "name", "")))
    return name.startswith(".") and ".ckpt." in name and name.endswith(".tmp")


class FailingFile:
    """A file whose writes stop after `budget` bytes: then `fail()` runs (it kills or raises)."""

    def __init__(self, file, budget: int, fail):
        self.file, self.budget, self.fail = file, budget, fail
        self.name = file.name

    def write(self, data) -> int:
        data = bytes(data)
        if len(data) > self.budget:
            self.file.write(data[: self.budget])
            self.file.flush()  # what the process wrote is in the file (the kernel's) when it dies
            self.fail()
        self.budget -= len(data)
        return self.file.write(data)

    def flush(self) -> None:
        self.file.flush()


def size_of(checkpoint) -> int:
    import torch

    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    return buffer.tell()


def kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def disk_full() -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class KillAt(SignalAtStep):
    """SignalAtStep with SIGKILL, and one more place: the final test's start (where="test")."""

    def __init__(self, step: int, where: str):
        super().__init__(step, signal.SIGKILL, where)

    def on_test_start(self, trainer, pl_module):
        self.signal(trainer, "test")


def patch_checkpoint_writes() -> None:
    import torch

    save = torch.save
    kill_in_save = os.environ.get(KILL_IN_SAVE)
    full_after = os.environ.get(DISK_FULL_AFTER)
    checkpoint_writes = []

    def faulty_save(obj, f, *args, **kwargs):
        if not is_checkpoint_write(f):
            return save(obj, f, *args, **kwargs)
        checkpoint_writes.append(f.name)
        if kill_in_save:
            step, fraction, prefix = (kill_in_save + ":").split(":")[:3]
            if obj.get("global_step", 0) >= int(step) and Path(f.name).name.startswith(f".{prefix}"):
                f = FailingFile(f, int(float(fraction) * size_of(obj)), kill)
        if full_after and len(checkpoint_writes) > int(full_after):
            f = FailingFile(f, size_of(obj) // 2, disk_full)
        return save(obj, f, *args, **kwargs)

    torch.save = faulty_save


def patch_build() -> None:
    """Adds a KillAt callback to the trainer train() builds: the run's config stays as an uninterrupted run's."""
    import mnistlab.tasks.train as task

    build = task.build
    step, _, where = os.environ[KILL_AT_STEP].partition(":")

    def build_with_killer(cfg):
        datamodule, model, trainer = build(cfg)
        trainer.callbacks.append(KillAt(int(step), where or "batch"))
        return datamodule, model, trainer

    task.build = build_with_killer


def install() -> None:
    if os.environ.get(KILL_IN_SAVE) or os.environ.get(DISK_FULL_AFTER):
        patch_checkpoint_writes()
    if os.environ.get(KILL_AT_STEP):
        patch_build()


if __name__ == "__main__":
    install()
    script = Path(sys.argv[1]).resolve()
    sys.argv = [str(script), *sys.argv[2:]]
    runpy.run_path(str(script), run_name="__main__")
