"""Nothing lost (issue 23): a disk that fills up during training ends the run with one `error:` line that says how
to go on; the checkpoints saved before stay valid, no temporary file is left, and once there is space again
`resume=<run>` finishes the run as if it had never stopped. Twice: with ENOSPC injected into the checkpoint writes
(helpers.fault_hooks), and on a real small tmpfs that the test mounts (skipped where mounting is not permitted)."""

import errno
import os
import subprocess
from pathlib import Path

import pytest
import torch
from helpers.fault_hooks import DISK_FULL_AFTER, FailingFile, disk_full
from helpers.fault_runs import assert_same_run, finished, overrides, temporaries, train, uninterrupted

from mnistlab.runs.checkpoint_io import ValidatedCheckpointIO
from mnistlab.runs.checkpoints import checkpoint_files, load_checkpoint


def assert_stopped_for_want_of_space(result: subprocess.CompletedProcess, run_dir: Path, step: int) -> None:
    """One line on stderr, naming the checkpoint and the step, and the command that continues; previous
    checkpoints intact, no temporary file left."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert [line for line in lines if line.startswith("error:")] == lines[-1:], result.stderr[-3000:]
    error = lines[-1]
    assert "checkpoints/" in error and ": No space left on device: " in error, error
    assert f"training stopped at step {step};" in error, error
    assert error.endswith(f"continue with: python train.py resume={os.path.relpath(run_dir)}"), error
    saved = checkpoint_files(run_dir)
    assert saved and all(load_checkpoint(path)["global_step"] < step for path in saved)
    assert not temporaries(run_dir)


@pytest.mark.process
def test_a_full_disk_while_writing_a_checkpoint_stops_with_one_line_and_resumes(mnist_dir, tmp_path, tmp_path_factory):
    """Saves 1-6 are steps 4, 8, 12 and epoch 0's end (the best and step000016.ckpt at its validation, last.ckpt at
    its end); the 7th, step000020.ckpt, fails half-way through."""
    result = train(*overrides(mnist_dir, tmp_path, "mlp"), **{DISK_FULL_AFTER: "6"})
    assert_stopped_for_want_of_space(result, tmp_path, step=20)
    finished(train(f"resume={tmp_path}"))  # space is back
    assert_same_run(tmp_path, uninterrupted("mlp", mnist_dir, tmp_path_factory))


def test_torch_s_failed_write_becomes_the_checkpoint_s_os_error(tmp_path, monkeypatch):
    """torch.save reports a write that failed as a RuntimeError ("unexpected pos ..."), the OSError as its context:
    ValidatedCheckpointIO raises that OSError, named as the checkpoint, which the one-line error reports."""
    io = ValidatedCheckpointIO(tmp_path)
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"step": 1, "weights": torch.ones(1000)}, path)
    before = path.read_bytes()
    save = torch.save
    monkeypatch.setattr(torch, "save", lambda obj, file: save(obj, FailingFile(file, 1000, disk_full)))
    with pytest.raises(OSError) as raised:
        io.save_checkpoint({"step": 2, "weights": torch.zeros(1000)}, path)
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]


def test_the_next_save_removes_what_a_killed_save_left(tmp_path):
    io = ValidatedCheckpointIO(tmp_path)
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    ended = subprocess.Popen(["true"])
    ended.wait()  # a process that has exited: no save of its own goes on
    dead = folder / f".step000008.ckpt.{ended.pid}.tmp"
    alive = folder / f".step000008.ckpt.{os.getppid()}.tmp"  # a live process's save: it may still be writing
    for leftover in (dead, alive):
        leftover.write_bytes(b"half a checkpoint")
    io.save_checkpoint({"step": 12}, folder / "step000012.ckpt")
    assert sorted(p.name for p in folder.iterdir()) == sorted([alive.name, "step000012.ckpt"])


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs mounted for this test and removed after it."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CAP_SYS_ADMIN); the injected ENOSPC test covers the rest")
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount_point)], capture_output=True, text=True
        )
    except FileNotFoundError:
        pytest.skip("no mount command here")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


@pytest.mark.process
def test_a_real_full_disk_stops_with_one_line_and_resumes_once_space_is_freed(mnist_dir, small_disk, tmp_path_factory):
    """The disk is filled up to room for two and a half checkpoints: step000004 and step000008.ckpt are written,
    step000012.ckpt fails part-way (the third, before the first is dropped); then the filler is removed."""
    reference = uninterrupted("mlp", mnist_dir, tmp_path_factory)
    checkpoint_size = (reference / "checkpoints" / "last.ckpt").stat().st_size
    filler = small_disk / "filler"
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    filler.write_bytes(bytes(free - int(2.5 * checkpoint_size) - 100_000))  # 100 kB: logs, config, metrics
    run_dir = small_disk / "run"
    result = train(*overrides(mnist_dir, run_dir, "mlp"))
    assert_stopped_for_want_of_space(result, run_dir, step=12)

    filler.unlink()
    finished(train(f"resume={run_dir}"))
    assert_same_run(run_dir, reference)
