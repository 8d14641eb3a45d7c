"""How Lightning reads and writes checkpoints in train.py.

Reading goes through the boundary (mnistlab.received.checkpoint), never by torch.load of its own: the file fit()
resumes from arrives as the state train() validated and sanitised; any other (the best checkpoint the final test
reloads) is read and sanitised the same way. Writing is atomic: a process killed, or a disk filling up, during a
save leaves the previous file as it was; a full disk is an OSError naming the checkpoint (never torch's own
RuntimeError), and what a killed save left behind is removed by the next save."""

import os
from pathlib import Path
from typing import Optional

from lightning.pytorch.plugins.io import TorchCheckpointIO

from mnistlab.received.checkpoint import lightning_state, read_checkpoint

TEMPORARY = ".tmp"


def failed_write(err: RuntimeError) -> Optional[OSError]:
    """The OSError (a full disk, ...) behind torch's RuntimeError: its writer reports a failed write in its own
    words ("unexpected pos ..."), with the file's OSError as the context."""
    context = err.__context__
    return context if isinstance(context, OSError) else None


def remove_leftovers(folder: Path) -> None:
    """Temporary files of saves whose process died (a kill part-way through a save): they are no checkpoints and
    only take space. A live process's (another rank's, another run's) are left alone."""
    for leftover in folder.glob(f".*.ckpt.*{TEMPORARY}"):
        pid = leftover.name[: -len(TEMPORARY)].rpartition(".")[2]
        if pid.isdigit() and int(pid) != os.getpid() and not running(int(pid)):
            leftover.unlink(missing_ok=True)


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: someone else's process
        return True
    return True


class ValidatedCheckpointIO(TorchCheckpointIO):
    def __init__(self, run_dir: Path, prepared: Optional[dict] = None, trusted_modules=(), max_parameters=None):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.prepared = {os.path.realpath(path): state for path, state in (prepared or {}).items()}
        self.trusted_modules, self.max_parameters = tuple(trusted_modules), max_parameters

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        """Written to a hidden temporary file beside it, flushed to disk, then renamed over `path`."""
        import torch

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_leftovers(path.parent)
        temporary = path.with_name(f".{path.name}.{os.getpid()}{TEMPORARY}")  # not *.ckpt: never taken for one
        try:
            with open(temporary, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except (OSError, RuntimeError) as err:
            failed = err if isinstance(err, OSError) else failed_write(err)
            if failed is None or failed.errno is None:
                raise
            raise OSError(failed.errno, failed.strerror, str(path)) from None  # named as the checkpoint it was to be
        finally:
            temporary.unlink(missing_ok=True)
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)  # the rename itself survives a crash
        finally:
            os.close(folder)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:

        prepared = self.prepared.get(os.path.realpath(path))
        if prepared is not None:
            return prepared
        return lightning_state(read_checkpoint(path, self.trusted_modules, self.max_parameters), self.run_dir)
