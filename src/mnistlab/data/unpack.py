"""A data file's bytes, gunzipped, with bounds on its size; optionally read ahead in a thread.

train.py starts `read_ahead` on the training files before torch and Lightning import (3-4 s of one core): zlib
inflates without holding the GIL, so the 0.2-0.3 s the files take are spent on the other core. What `unpack`
hands out is what reading the file then would give: the thread's bytes only if the file is still the one it read
(same inode, size and modification time), else the file is read again, errors included. Imports nothing heavy."""

import os
import stat
import threading
import zlib
from concurrent.futures import Future
from pathlib import Path
from typing import Iterable, Optional

from mnistlab.errors import DataError

MAX_BYTES = 256 << 20  # unpacked: MNIST's largest file is 47 MB, a few MB of gzip could unpack to gigabytes
MAX_PACKED = 64 << 20  # on disk: the largest of the family is 26 MB (Fashion-MNIST's); gzip skips zero padding
# one byte at a time, so a file padded to a terabyte would keep a core busy for days within MAX_BYTES

_ahead: dict = {}  # real path -> Future of (bytes, identity of the file they came from, or None if it changed)


def identity(path: Path) -> Optional[tuple]:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns


def real(path: Path) -> Path:
    return Path(os.path.realpath(path))  # never raises, link loops included; independent of later chdirs


def read(path: Path) -> bytes:
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens at once (and is refused below)
        with open(descriptor, "rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise DataError(f"{path} is not a regular file: delete it and download it again")
            if info.st_size > MAX_PACKED:
                raise DataError(f"{path} is over {MAX_PACKED >> 20} MB: not a data set this program reads")
            packed = file.read(MAX_PACKED + 1)
        raw = gunzip(packed) if path.suffix == ".gz" else packed
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path} is unreadable or corrupt ({err}): delete it and download it again") from None
    if len(raw) > MAX_BYTES:
        del raw  # the error's traceback keeps this frame: not the bytes with it
        raise DataError(f"{path} unpacks to over {MAX_BYTES >> 20} MB: not a data set this program reads")
    return raw


def gunzip(packed: bytes) -> bytes:
    """The gzip members in `packed`, one after another, as gzip.GzipFile reads them (zero padding after a member
    ignored), cut at MAX_BYTES + 1 bytes. One zlib call a member: the read-ahead thread holds the GIL only between
    calls (gzip.GzipFile's Python loop takes it every 128 KB, slowing the imports it should overlap)."""
    parts, size, rest = [], 0, packed
    while rest:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip's header and trailer, CRC checked
        part = inflater.decompress(rest, MAX_BYTES + 1 - size)
        parts.append(part)
        size += len(part)
        if size > MAX_BYTES:
            break
        if not inflater.eof:
            raise EOFError("Compressed file ended before the end-of-stream marker was reached")
        rest = inflater.unused_data
        if not rest.strip(b"\0"):
            break
    return b"".join(parts)


def forget() -> None:
    """Drop what was read ahead and not taken (also in a forked child, which has the Futures but not the thread)."""
    _ahead.clear()


def read_ahead(paths: Iterable[Path]) -> None:
    """Start reading the regular files among `paths`, in one background thread; what an earlier call read and
    nobody took is dropped (a sweep's previous job)."""
    forget()
    jobs = [(real(Path(path)), Future()) for path in paths if Path(path).is_file()]
    if not jobs:
        return

    def work():
        for path, future in jobs:
            before = identity(path)
            try:
                data = read(path)
            except BaseException as err:  # unpack reads again and raises its own error, naming the path as given
                future.set_exception(err)
            else:
                future.set_result((data, before if identity(path) == before else None))

    try:
        threading.Thread(target=work, name="mnistlab-read-ahead", daemon=True).start()
    except RuntimeError:  # no thread to be had: setup reads the files itself
        return
    _ahead.update(jobs)


def unpack(path: Path) -> bytes:
    """The file's bytes: from the read-ahead thread if it read this very file (waiting for it), else read now."""
    future = _ahead.pop(real(Path(path)), None)
    if future is not None and future.exception() is None:
        data, read_from = future.result()
        if read_from is not None and read_from == identity(path):
            return data
    return read(Path(path))


os.register_at_fork(after_in_child=forget)
