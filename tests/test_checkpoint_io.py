"""train.py's checkpoint IO (src/mnistlab/runs/checkpoint_io.py): a save that fails part-way (a kill, a full disk)
leaves the previous checkpoint as it was, and no half-written file that could be taken for one."""

import errno

import pytest
import torch

from mnistlab.runs.checkpoint_io import ValidatedCheckpointIO


def test_a_failed_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    io = ValidatedCheckpointIO(tmp_path)
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"step": 1, "weights": torch.ones(3)}, path)
    before = path.read_bytes()

    def disk_full(obj, file, *args, **kwargs):
        file.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        io.save_checkpoint({"step": 2, "weights": torch.zeros(3)}, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]  # the temporary file is gone
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["step"] == 1


def test_metrics_csv_rewrites_are_atomic(tmp_path, monkeypatch):
    """A new column makes the CSV writer write the whole file again: a failure meanwhile (a kill, a full disk)
    leaves the old file whole, and no temporary file behind."""
    import csv

    from mnistlab.callbacks.csv_logger import ContinuingWriter

    writer = ContinuingWriter(str(tmp_path), resume_step=0)
    writer.log_metrics({"train/loss": 0.5}, step=0)
    writer.save()
    before = (tmp_path / "metrics.csv").read_text()

    def full_disk(self, rows):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(csv.DictWriter, "writerows", full_disk)
    writer.log_metrics({"val/acc": 0.9}, step=1)  # a new column: the file is written again
    with pytest.raises(OSError):
        writer.save()
    assert (tmp_path / "metrics.csv").read_text() == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["metrics.csv"]
