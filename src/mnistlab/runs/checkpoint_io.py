"""How Lightning reads and writes checkpoints in train.py.

Reading goes through the boundary (mnistlab.received.checkpoint), never by torch.load of its own: the file fit()
resumes from arrives as the state train() validated and sanitised; any other (the best checkpoint the final test
reloads) is read and sanitised the same way. Writing is atomic: a process killed, or a disk filling up, during a
save leaves the previous file as it was."""

import os
from pathlib import Path
from typing import Optional

from lightning.pytorch.plugins.io import TorchCheckpointIO


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
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # not *.ckpt: never taken for a checkpoint
        try:
            with open(temporary, "wb") as file:
                torch.save(checkpoint, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)  # the rename itself survives a crash
        finally:
            os.close(folder)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        from mnistlab.received.checkpoint import lightning_state, read_checkpoint

        prepared = self.prepared.get(os.path.realpath(path))
        if prepared is not None:
            return prepared
        return lightning_state(read_checkpoint(path, self.trusted_modules, self.max_parameters), self.run_dir)
