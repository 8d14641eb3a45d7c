"""Attacks on the start-up read-ahead of the training files (mnistlab.data.unpack, train.py's read_ahead call).

The data files are untrusted: any folder a user got from anywhere. Each test states the safe behaviour; the
read-ahead must never make reading them differ from, or go worse than, reading them when setup runs. Many a test
was written against a flaw found by attacking it (some brought by the read-ahead, some older ones of the reading
itself: a FIFO, zero padding, a refused bomb's memory) and passes with its fix."""

import gc
import os
import random
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
import weakref
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import ROOT, VAL_SIZE, compose, synthetic_digits, write_idx, write_raw

from mnistlab.data import unpack
from mnistlab.data.datasets import FILES, training_files
from mnistlab.data.idx import read_idx
from mnistlab.data.mnist import MNISTDataModule
from mnistlab.errors import DataError

IMAGES, LABELS = FILES["train"]
OURS = "mnistlab.data.mnist.MNISTDataModule"


@pytest.fixture(autouse=True)
def nothing_read_ahead():
    """Each attack starts, and leaves, with nothing read ahead."""
    unpack.read_ahead([])
    yield
    unpack.read_ahead([])


@pytest.fixture
def raw(tmp_path) -> Path:
    """A data folder of our own (tests change its files): <tmp>/data/MNIST/raw."""
    return write_raw(tmp_path / "data", "MNIST") / "MNIST" / "raw"


def settle() -> None:
    """Wait until the read-ahead thread has read every file it took."""
    for future in list(unpack._ahead.values()):
        future.exception(timeout=30)


def outcome(read) -> tuple:
    try:
        value = read()
    except Exception as err:  # noqa: BLE001 (what a read raises is what is compared)
        return type(err).__name__, str(err)
    return "ok", value.tolist() if isinstance(value, torch.Tensor) else value


def within(seconds: float, call):
    """call()'s result, run in a thread so that a hang fails the test instead of stalling the session."""
    box = {}

    def target():
        try:
            box["value"] = call()
        except BaseException as err:  # noqa: BLE001 (handed to the test)
            box["error"] = err

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still waiting after {seconds} s"
    if "error" in box:
        raise box["error"]
    return box["value"]


def slowed(monkeypatch) -> threading.Event:
    """The read-ahead thread's reads (it calls unpack.read) wait for the returned gate, as on a slow disk or
    network mount: what happens while a read is still under way."""
    gate, real = threading.Event(), unpack.read

    def slow(path):
        gate.wait(10)
        return real(path)

    monkeypatch.setattr(unpack, "read", slow)
    return gate


def run_python(code: str, *args, timeout: float, cwd=ROOT):
    """`python -c code args`; None when it ran past `timeout` (it is killed then)."""
    try:
        return subprocess.run(
            [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=cwd
        )
    except subprocess.TimeoutExpired:
        return None


def gzip_of_zeros(path: Path, megabytes: int) -> Path:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: a gzip member
    with open(path, "wb") as f:
        for _ in range(megabytes):
            f.write(packer.compress(bytes(1 << 20)))
        f.write(packer.flush())
    return path


# ---- the bytes handed out are those a read at setup would give -------------------------------------------------


def test_damaged_files_give_the_same_outcome_read_ahead_or_not(tmp_path):
    """Safe: for any damage to a gzip file (bytes changed, cut short, junk appended), read_idx gives the same
    tensor or the same DataError whether the file was read ahead or not, and never another exception."""
    path = tmp_path / LABELS
    write_idx(path, np.arange(300) % 10)
    good, rng, seen = path.read_bytes(), random.Random(1), set()
    for _ in range(150):
        damaged = bytearray(good)
        how = rng.randrange(4)
        if how == 0:
            for _ in range(rng.randint(1, 3)):
                damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        elif how == 1:
            damaged = damaged[: rng.randrange(len(damaged))]
        elif how == 2:
            damaged += bytes(rng.randrange(256) for _ in range(rng.randint(1, 20)))
        else:
            damaged[rng.randrange(10)] ^= 1 << rng.randrange(8)  # the header
        path.write_bytes(bytes(damaged))
        direct = outcome(lambda: read_idx(path))
        unpack.read_ahead([path])
        ahead = outcome(lambda: read_idx(path))
        assert ahead == direct and direct[0] in ("ok", "DataError"), (bytes(damaged[:16]), direct, ahead)
        seen.add(direct[0])
    assert seen == {"ok", "DataError"}  # both kinds were tried


@pytest.mark.parametrize("kind", ["dev_zero", "directory", "fifo"])
def test_special_files_are_not_read_ahead(raw, kind):
    """Safe: a training file that is a link to /dev/zero, to a directory, or a FIFO is not opened by the
    read-ahead (no reader appears on the FIFO, read_ahead returns at once); reading it at setup gives what it
    gave before (a DataError; a FIFO: see test_a_fifo_is_refused_not_waited_on)."""
    path = raw / IMAGES
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero" if kind == "dev_zero" else raw)
    started = time.monotonic()
    unpack.read_ahead([path, raw / LABELS])
    assert time.monotonic() - started < 1 and list(unpack._ahead) == [(raw / LABELS).resolve()]
    if kind == "fifo":
        with pytest.raises(OSError) as nobody:  # ENXIO: no process has the FIFO open for reading
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        assert nobody.value.errno == 6
    else:
        with pytest.raises(DataError):
            within(5, lambda: read_idx(path))


def test_a_file_missing_at_start_and_downloaded_in_setup_is_read(tmp_path, monkeypatch):
    """Safe: a training file that appears only in prepare_data (the download) is read then, not skipped."""
    raw = tmp_path / "data" / "MNIST" / "raw"
    write_raw(tmp_path / "data", "MNIST")
    (raw / IMAGES).unlink()
    images, _ = synthetic_digits(600, seed=7)

    def download(raw_dir, *sources):
        write_idx(raw_dir / IMAGES, images)
        return []

    monkeypatch.setattr("mnistlab.data.mnist.download_missing", download)
    unpack.read_ahead([raw / IMAGES, raw / LABELS])
    dm = MNISTDataModule(str(tmp_path / "data"), val_size=VAL_SIZE, download=True, seed=0)
    dm.setup("fit")
    assert torch.equal(dm.splits["train"][0], torch.from_numpy(images[VAL_SIZE:]).to(torch.uint8))


@pytest.mark.parametrize("how", ["replaced", "deleted_then_downloaded"])
def test_a_file_changed_after_the_read_ahead_is_read_again(tmp_path, monkeypatch, how):
    """Safe: setup trains on the file as it is when setup reads it, as without the read-ahead."""
    data = write_raw(tmp_path / "data", "MNIST")
    raw = data / "MNIST" / "raw"
    unpack.read_ahead([raw / IMAGES, raw / LABELS])
    settle()
    images, _ = synthetic_digits(600, seed=7)  # other images, the same labels file
    if how == "replaced":
        write_idx(tmp_path / "new.gz", images)
        os.replace(tmp_path / "new.gz", raw / IMAGES)  # as a copy or the downloader puts a file in place
    else:
        (raw / IMAGES).unlink()
        monkeypatch.setattr(
            "mnistlab.data.mnist.download_missing", lambda raw_dir, *s: write_idx(raw_dir / IMAGES, images) or []
        )
    dm = MNISTDataModule(str(data), val_size=VAL_SIZE, download=True, seed=0)
    dm.setup("fit")
    assert torch.equal(dm.splits["train"][0], torch.from_numpy(images[VAL_SIZE:]).to(torch.uint8))


def test_the_same_file_under_two_names(raw):
    """Safe: training files that are links to one file (or test files linked to the training files) give what
    a direct read gives, for every split."""
    for name in FILES["test"]:
        (raw / name).unlink()
    (raw / FILES["test"][0]).symlink_to(raw / IMAGES)
    (raw / FILES["test"][1]).symlink_to(raw / LABELS)
    data = str(raw.parent.parent)
    direct = MNISTDataModule(data, val_size=VAL_SIZE, download=False, seed=0)
    direct.setup()
    unpack.read_ahead([raw / IMAGES, raw / LABELS])
    ahead = MNISTDataModule(data, val_size=VAL_SIZE, download=False, seed=0)
    ahead.setup()
    for split in ("train", "val", "test"):
        assert all(torch.equal(a, b) for a, b in zip(ahead.splits[split], direct.splits[split])), split
    assert unpack._ahead == {}


def test_what_is_handed_out_for_a_path_is_that_file(tmp_path, monkeypatch):
    """Safe: the bytes handed out for a path are that file's, whatever happens to the working directory."""
    for folder, seeds in (("a", (0, 1)), ("b", (5, 6))):
        write_raw(tmp_path / folder / "data", "MNIST", seeds)
    ours = tmp_path / "a" / "data" / "MNIST" / "raw" / LABELS
    expected = read_idx(ours)
    gate = slowed(monkeypatch)
    monkeypatch.chdir(tmp_path / "a")
    unpack.read_ahead([Path("data/MNIST/raw") / LABELS])
    monkeypatch.chdir(tmp_path / "b")  # before the thread opens the file
    gate.set()
    assert torch.equal(within(10, lambda: read_idx(ours)), expected)


def test_a_link_loop_is_a_data_error(raw):
    """Safe: a training file that is a symlink loop gives a DataError, as any unreadable file does."""
    path = raw / IMAGES
    path.unlink()
    path.symlink_to(path.name)
    unpack.read_ahead([path])  # not a file: nothing read ahead
    with pytest.raises(DataError, match="unreadable"):
        read_idx(path)


# ---- which paths are read ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, data_dir",
    [
        ("mnist", "{tmp}/plain"),
        ("fashion_mnist", "{tmp}/plain"),
        ("kmnist", "{tmp}/plain"),
        ("mnist", "'${{oc.env:RA_DATA}}'"),  # an interpolation, resolved as setup resolves it
        ("mnist", "'{tmp}/with spaces, é $x=y/'"),
        ("mnist", "'{tmp}/link/./'"),  # through a link, a dot and a trailing slash
    ],
)
def test_read_ahead_reads_what_setup_reads(tmp_path, monkeypatch, data, data_dir):
    """Safe: the files read ahead are exactly the training files the data module then reads (for each data
    set and any spelling of data.data_dir), all of them taken by setup, with the bytes a direct read gives."""
    plain = tmp_path / "plain"
    for folder in ("MNIST", "FashionMNIST", "KMNIST"):
        write_raw(plain, folder, seeds=(len(folder), 1))  # each data set its own images
    (tmp_path / "with spaces, é $x=y").symlink_to(plain)
    (tmp_path / "link").symlink_to(plain)
    monkeypatch.setenv("RA_DATA", str(plain))
    cfg = compose([f"data={data}", f"data.data_dir={data_dir.format(tmp=tmp_path)}", "data.download=false"])
    from hydra.utils import instantiate

    direct = instantiate(cfg.data, _convert_="all", val_size=VAL_SIZE)
    direct.setup("fit")
    paths = training_files(cfg.data)
    assert paths == [direct.raw_dir / name for name in FILES["train"]]
    unpack.read_ahead(paths)
    assert len(unpack._ahead) == 2
    ahead = instantiate(cfg.data, _convert_="all", val_size=VAL_SIZE)
    ahead.setup("fit")
    assert unpack._ahead == {}  # setup took both
    assert torch.equal(ahead.splits["train"][0], direct.splits["train"][0])


def test_a_name_too_long_gives_the_line_it_gave_before(tmp_path):
    """Safe: where read_ahead cannot even look at a path (a name over the system's limit), the user gets the
    error line prepare_data gave for it before the read-ahead existed (train.py: one line, exit code 2)."""
    data_dir = str(tmp_path / ("x" * 300))
    with pytest.raises(OSError) as before:
        MNISTDataModule(data_dir, download=False).prepare_data()
    try:
        unpack.read_ahead(training_files({"_target_": OURS, "dataset": "mnist", "data_dir": data_dir}))
    except OSError as now:
        assert str(now) == str(before.value) and isinstance(now, OSError)
    else:
        assert unpack._ahead == {}


WATCHED_TRAIN = """
import sys, types, runpy
from pathlib import Path
import mnistlab.data.unpack as unpack
original = unpack.read_ahead
def watched(paths):
    paths = list(paths)
    print("read ahead:", sorted(str(p) for p in paths if p.is_file()), flush=True)
    original(paths)
unpack.read_ahead = watched
stub = types.ModuleType("mnistlab.tasks.train")  # no torch, no training: what train() was given
stub.train = lambda cfg: print("train: data_dir", cfg.data.data_dir, flush=True)
sys.modules["mnistlab.tasks.train"] = stub
sys.argv = ["train.py", *sys.argv[1:]]
runpy.run_path(sys.argv.pop(1), run_name="__main__")
"""


def fake_run(folder: Path, data_dir: str) -> Path:
    """A run folder as train.py leaves it, as far as continuing it looks before train(): saved config, checkpoint."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text(f"data:\n  data_dir: {data_dir}\n")
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "last.ckpt").write_bytes(b"not read here")
    return folder


def test_resume_reads_nothing_ahead(tmp_path):
    """Safe: train.py resume=<run> reads nothing ahead (the run's saved config names its data); a new run does."""
    write_raw(tmp_path / "data", "MNIST")  # data.data_dir's default, relative to where train.py runs
    train = str(ROOT / "train.py")
    new = run_python(WATCHED_TRAIN, train, f"hydra.run.dir={tmp_path / 'new'}", timeout=60, cwd=tmp_path)
    assert new is not None and new.returncode == 0 and "read ahead: ['data/MNIST/raw/train-" in new.stdout, (
        new.stdout + new.stderr
    )
    run = fake_run(tmp_path / "run", str(tmp_path / "elsewhere"))
    resumed = run_python(WATCHED_TRAIN, train, f"resume={run}", timeout=60, cwd=tmp_path)
    assert resumed is not None and resumed.returncode == 0 and "train:" in resumed.stdout, (
        resumed.stdout + resumed.stderr
    )
    assert "read ahead" not in resumed.stdout


def test_a_continued_run_reads_ahead_no_other_folder(tmp_path):
    """Safe: continuing a run from one of its checkpoints reads nothing ahead from a folder it will not read."""
    write_raw(tmp_path / "data", "MNIST")
    run = fake_run(tmp_path / "run", str(tmp_path / "elsewhere"))
    continued = f"ckpt_path={run}/checkpoints/last.ckpt"
    result = run_python(WATCHED_TRAIN, ROOT / "train.py", continued, timeout=60, cwd=tmp_path)
    assert result is not None and result.returncode == 0 and "train:" in result.stdout, result.stdout + result.stderr
    assert "data/MNIST" not in result.stdout


# ---- memory ------------------------------------------------------------------------------------------------------


def test_a_gzip_bomb_is_refused_alike(tmp_path, monkeypatch):
    """Safe: a file that unpacks past the bound gives the same DataError read ahead or not (the bound lowered
    to 4 MB here, so that the bomb is small)."""
    monkeypatch.setattr(unpack, "MAX_BYTES", 4 << 20)
    bomb = gzip_of_zeros(tmp_path / IMAGES, 6)
    direct = outcome(lambda: read_idx(bomb))
    unpack.read_ahead([bomb])
    assert outcome(lambda: read_idx(bomb)) == direct and "unpacks to over 4 MB" in direct[1]
    assert unpack._ahead == {}


@pytest.mark.parametrize("ahead", [False, True])
def test_a_refused_bomb_keeps_no_memory_with_its_error(tmp_path, monkeypatch, ahead):
    """Safe: while its error is kept (a sweep keeps each failed job's), a refused file holds none of its bytes."""
    monkeypatch.setattr(unpack, "MAX_BYTES", 8 << 20)
    bomb = gzip_of_zeros(tmp_path / IMAGES, 10)
    gc.collect()
    tracemalloc.start()  # before the read-ahead: its thread's allocations are traced too
    try:
        if ahead:
            unpack.read_ahead([bomb])
            settle()
        try:
            read_idx(bomb)
        except DataError as err:
            kept = err
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert "unpacks to over" in str(kept) and held < 1 << 20, f"{held >> 20} MB held with the error"


def test_a_later_read_ahead_drops_what_nobody_took(raw, tmp_path):
    """Safe: a sweep's next job (its read_ahead, even of nothing) drops what the previous job read and did not
    take: the bytes are freed, and a later read of that file reads the file as it is then."""
    unpack.read_ahead([raw / IMAGES, raw / LABELS])  # a job that failed before setup
    settle()
    taken = [weakref.ref(future) for future in unpack._ahead.values()]
    unpack.read_ahead([])  # the next job: another data module
    for thread in [t for t in threading.enumerate() if t.name == "mnistlab-read-ahead"]:
        thread.join(10)
    gc.collect()
    assert all(ref() is None for ref in taken)
    _, labels = synthetic_digits(600, seed=9)
    write_idx(raw / LABELS, labels)
    assert torch.equal(read_idx(raw / LABELS), torch.from_numpy(labels).to(torch.uint8))


def test_setup_keeps_no_bytes_it_did_not_take(tmp_path):
    """Safe: once the data module has loaded its training split, nothing read ahead is kept."""
    other = write_raw(tmp_path / "other", "MNIST") / "MNIST" / "raw"
    unpack.read_ahead([other / IMAGES, other / LABELS])  # not the folder the run reads
    settle()
    dm = MNISTDataModule(str(write_raw(tmp_path / "data", "MNIST")), val_size=VAL_SIZE, download=False, seed=0)
    dm.setup("fit")
    assert unpack._ahead == {}


# ---- hangs, signals, threads, processes ------------------------------------------------------------------------


def test_sparse_zero_padding_is_refused_promptly(raw):
    """Safe: however a file is crafted, reading it ends (a DataError) within seconds."""
    path = raw / LABELS
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size + (1 << 40))  # a sparse hole: nothing on disk
    code = "import sys; from pathlib import Path; from mnistlab.data.unpack import read; read(Path(sys.argv[1]))"
    result = run_python(code, path, timeout=3)
    assert result is not None, "still reading after 3 s"


def test_a_fifo_is_refused_not_waited_on(raw):
    """Safe: a training file that is a FIFO gives a DataError, rather than a run that waits for ever."""
    path = raw / IMAGES
    path.unlink()
    os.mkfifo(path)
    code = "import sys; from pathlib import Path; from mnistlab.data.unpack import read; read(Path(sys.argv[1]))"
    result = run_python(code, path, timeout=3)
    assert result is not None and "DataError" in result.stderr, "still waiting after 3 s"


def test_no_thread_to_read_ahead_is_no_harm(raw, monkeypatch):
    """Safe: the read-ahead is an optimisation: where it cannot start its thread, the files are read at setup."""
    paths = [raw / IMAGES, raw / LABELS]
    expected = [read_idx(path) for path in paths]
    with monkeypatch.context() as patch:
        patch.setattr(threading.Thread, "start", lambda self: (_ for _ in ()).throw(RuntimeError("can't start")))
        unpack.read_ahead(paths)
    assert all(torch.equal(within(5, lambda p=p: read_idx(p)), e) for p, e in zip(paths, expected))


def test_a_forked_process_reads_for_itself(raw, monkeypatch):
    """Safe: a process forked during the read-ahead gets the file's bytes in its setup, without waiting for ever."""
    path = raw / LABELS
    expected, real = unpack.read(path), unpack.read
    gate = slowed(monkeypatch)
    unpack.read_ahead([path])
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 5
        try:
            unpack.read = real  # its own read, if it makes one, is not slowed
            signal.signal(signal.SIGALRM, lambda *_: os._exit(3))
            signal.alarm(2)
            code = 0 if unpack.unpack(path) == expected else 4
        finally:
            os._exit(code)
    deadline = time.monotonic() + 8
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    gate.set()
    if done[0] == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert done[0] == pid and os.waitstatus_to_exitcode(done[1]) == 0, "the forked process waited for ever"


def test_an_interrupt_ends_the_wait_for_the_thread(raw, monkeypatch):
    """Safe: Ctrl-C (or a SIGTERM handler that raises) while setup waits for the read-ahead ends the wait at
    once, as it ends a read made at setup."""
    gate = slowed(monkeypatch)
    unpack.read_ahead([raw / LABELS])

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    started = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    try:
        with pytest.raises(KeyboardInterrupt):
            unpack.unpack(raw / LABELS)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        gate.set()
    assert time.monotonic() - started < 3


def test_a_signal_handler_that_returns_lets_the_wait_go_on(raw, monkeypatch):
    """Safe: a handler that only records the signal (as a run's preemption handler does) runs during the wait,
    and the wait then goes on to the file's bytes."""
    expected = unpack.read(raw / LABELS)
    gate = slowed(monkeypatch)
    unpack.read_ahead([raw / LABELS])
    seen = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: seen.append(time.monotonic()))
    threading.Timer(0.6, gate.set).start()
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    try:
        got = unpack.unpack(raw / LABELS)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        gate.set()
    assert got == expected and len(seen) == 1


EXIT_WHILE_READING = """
import sys, threading
from pathlib import Path
from mnistlab.cli import run
from mnistlab.data.unpack import read_ahead
from mnistlab.errors import DataError

def main():
    read_ahead([Path(sys.argv[1])])
    print("reading:", any(t.name == "mnistlab-read-ahead" for t in threading.enumerate()), flush=True)
    raise DataError("refused while the read goes on")

run(main)
"""


def test_exit_while_the_thread_reads_is_clean(tmp_path):
    """Safe: a run refused while the read-ahead thread is still unpacking exits at once, with its one error line
    and exit code 2: no wait for the thread, no crash of it at interpreter shutdown."""
    big = gzip_of_zeros(tmp_path / IMAGES, 200)  # ~0.7 s of unpacking
    for _ in range(3):
        started = time.monotonic()
        result = run_python(EXIT_WHILE_READING, big, timeout=30)
        assert result is not None and result.returncode == 2 and "reading: True" in result.stdout, (
            result.stdout + result.stderr
        )
        assert result.stderr == "error: refused while the read goes on\n"
        assert time.monotonic() - started < 10


def test_an_error_of_the_thread_is_one_line_and_exit_2(tmp_path, in_process):
    """Safe: a corrupt training file, read by the thread, reaches the user of train.py as it did read at setup:
    one `error:` line on stderr with the direct read's message, exit code 2, no traceback."""
    data = write_raw(tmp_path / "data", "MNIST")
    path = data / "MNIST" / "raw" / IMAGES
    path.write_bytes(path.read_bytes()[:300])  # a gzip cut short
    with pytest.raises(DataError) as direct:
        read_idx(path)
    result = in_process("train.py", f"data.data_dir={data}", "data.download=false", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.strip().splitlines() == [f"error: {direct.value}"]
