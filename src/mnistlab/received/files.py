"""Reading a received file's bytes: a regular file (not a link, a folder or a device), within a size limit."""

import os
import stat
from pathlib import Path

from mnistlab.errors import ReceivedFileError


def read_bytes(path, limit: int, follow_link: bool = False) -> bytes:
    """The file's bytes. A symbolic link is refused unless `follow_link` (a path the user typed); so is
    anything but a regular file, and a file over `limit` bytes (read no further than that)."""
    path = Path(path)
    flags = os.O_RDONLY | (0 if follow_link else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise ReceivedFileError(f"{path}: no such file") from None
    except OSError as err:
        if not follow_link and path.is_symlink():
            raise ReceivedFileError(f"{path}: a symbolic link, not a file of the run; not followed") from None
        raise ReceivedFileError(f"{path}: cannot be read ({err.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ReceivedFileError(f"{path}: not a regular file")
    with os.fdopen(fd, "rb") as file:
        try:
            data = file.read(limit + 1)
        except OSError as err:
            raise ReceivedFileError(f"{path}: cannot be read ({err.strerror})") from None
    if len(data) > limit:
        raise ReceivedFileError(f"{path}: larger than the {limit // 1024} KiB such a file may have")
    return data


def read_text(path, limit: int, follow_link: bool = False) -> str:
    try:
        return read_bytes(path, limit, follow_link).decode("utf-8")
    except UnicodeDecodeError as err:
        raise ReceivedFileError(f"{path}: not UTF-8 text (byte {err.start})") from None


def is_plain_file(path) -> bool:
    """A regular file, not reached through a link at its last step."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


MAX_RUN_ENTRIES = 100_000  # files and folders a run or sweep folder is searched through for links


def refuse_links(folder) -> None:
    """Refuse a run or sweep folder that holds a symbolic link anywhere inside: a tool writing its report,
    metrics, logs or checkpoints there would write, or remove, wherever the link points."""
    folder = Path(folder)
    seen = 0
    for parent, dirs, files in os.walk(folder, followlinks=False):
        for name in dirs + files:
            seen += 1
            if seen > MAX_RUN_ENTRIES:
                raise ReceivedFileError(f"{folder}: over {MAX_RUN_ENTRIES} files and folders; not a run folder")
            path = Path(parent, name)
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                raise ReceivedFileError(
                    f"{path}: a symbolic link in the run folder; refused (writing there would write where it points)"
                )
            if stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
                raise ReceivedFileError(
                    f"{path}: a hard link (one of {info.st_nlink} names of that file); refused (rewriting it would "
                    f"rewrite the file outside the run folder too)"
                )
