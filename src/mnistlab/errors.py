"""Errors that mean "the user asked for something wrong", and how any error is said in one line (mnistlab.cli
prints it on stderr; sweep records keep it)."""


class UserError(Exception):
    """Bad input: printed as a one-line message, exit code 2, no traceback."""


class ConfigError(UserError):
    """A config value out of its allowed range."""


class DataError(UserError):
    """MNIST files missing, unreadable or corrupt."""


class ReceivedFileError(UserError):
    """A file that may come from someone else (a checkpoint, a run folder's config or records, a picture) that is
    unreadable, malformed, too large or unsafe: refused at the boundary, mnistlab.received."""


class CheckpointError(ReceivedFileError):
    """A checkpoint or exported model missing, unreadable, unsafe, or not from this project."""


class ImageError(ReceivedFileError):
    """A file that is not a readable picture of a digit."""


class UnsafeConfigError(ReceivedFileError):
    """A checkpoint or saved config names something to build that is neither allowed nor trusted."""


class SweepRefused(ConfigError):
    """A setting that no job of a sweep can run with: the sweep stops at the first job that raises it."""


def fold(text: str) -> str:
    """Hydra and OmegaConf messages span lines (option lists, full_key, search path): make one."""
    text = text.split("Config search path")[0]
    folded, in_list = "", False
    for line in (raw.strip() for raw in text.splitlines()):
        if not line or line.startswith(("full_key:", "object_type", "reference_type")):
            continue
        if not folded:
            folded = line
        elif folded.endswith(":"):
            folded, in_list = f"{folded} {line}", True
        elif in_list:
            folded = f"{folded}, {line}"
        else:
            folded = f"{folded}{'' if folded.endswith('.') else '.'} {line}"
    return folded


def describe(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror:  # "[Errno 20] Not a directory: 'x'" -> "x: Not a directory"
        return f"{err.filename}: {err.strerror}" if err.filename else err.strerror
    return fold(str(err))


def one_line(err: BaseException) -> str:
    parts = [describe(exc) for exc in (err, err.__cause__) if exc is not None]
    return ": ".join(dict.fromkeys(part for part in parts if part))
