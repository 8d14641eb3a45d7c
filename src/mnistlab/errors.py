"""Errors that mean "the user asked for something wrong": the CLI prints them as one line."""


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


class UnsafeConfigError(ReceivedFileError):
    """A checkpoint or saved config names something to build that is neither allowed nor trusted."""


class SweepRefused(ConfigError):
    """A setting that no job of a sweep can run with: the sweep stops at the first job that raises it."""
