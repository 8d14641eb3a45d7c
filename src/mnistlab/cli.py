"""Run a Hydra entry point and turn bad input into one clear line on stderr."""

import argparse
import os
import sys
import warnings
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Callable, Iterator

from mnistlab.compat.hydra_compose import composing_once
from mnistlab.compat.hydra_help import speed_up_help
from mnistlab.errors import UserError, one_line
from mnistlab.perf.garbage import no_collection_at_exit
from mnistlab.runs import distributed
from mnistlab.settings.hydra_mode import in_multirun

EXIT_BAD_INPUT = 2


def expected_failures() -> tuple:
    """What bad input causes, in every entry point: a wrong config (ours, Hydra's, OmegaConf's, Lightning's
    checks of trainer arguments), a file or folder that is missing, of the wrong kind or unwritable, bad
    data or checkpoints (UserError). Anything else is a bug and keeps its traceback."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    failures = [UserError, HydraException, OmegaConfBaseException, OSError]
    lightning = sys.modules.get("lightning.fabric.utilities.exceptions")  # imported only if Lightning is
    if lightning is not None:
        failures.append(lightning.MisconfigurationException)
    return tuple(failures)


@contextmanager
def exit_on_bad_input() -> Iterator[None]:
    """Bad input becomes `error: <one line>` on stderr and exit code 2 (SystemExit passes through Hydra).

    In a run of several processes (DDP), another process stopping is no bad input: one line saying so and how
    to continue, exit code 1 (mnistlab.runs.distributed); an error that every process raises together (e.g. a
    diverged loss, agreed across them) is printed by rank 0 alone."""
    try:
        yield
    except Exception as err:
        own = isinstance(err, UserError)  # this process's own error, even when a peer has stopped too
        if not own and distributed.is_peer_failure(err):
            distributed.say_once(distributed.peer_stopped_line(err))
            raise SystemExit(distributed.peer_stopped_exit_code()) from None
        if distributed.is_rank_zero():
            distributed.failing_on_its_own()  # the processes it started stop without a line of their own
        if not isinstance(err, expected_failures()):
            raise
        if distributed.is_rank_zero() or not getattr(err, "raised_by_every_process", False):
            distributed.say_once(one_line(err))
        raise SystemExit(EXIT_BAD_INPUT) from None


class ArgumentParser(argparse.ArgumentParser):
    """argparse for the tools run through `run`: a bad argument is an `error:` line as everywhere else."""

    def error(self, message: str):
        raise UserError(f"{message} (see: {self.prog} --help)")


def task_errors() -> AbstractContextManager:
    """Around a task body: a single run exits on bad input; a sweep's job raises, so that the sweeper
    records it as failed and runs the other jobs."""
    return nullcontext() if in_multirun() else exit_on_bad_input()


def warnings_to_stdout() -> None:
    """Warnings are news, not failures: they go to stdout, so that stderr holds what went wrong (a refusal is
    its one line there)."""

    def show(message, category, filename, lineno, file=None, line=None):
        sys.stdout.write(warnings.formatwarning(message, category, filename, lineno, line))

    warnings.showwarning = show


def run(main: Callable[[], object]) -> None:
    """Every entry point's one way in: a `@hydra.main` function (whose task body also runs under
    exit_on_bad_input) or an argparse tool's main, with expected failures turned into one line."""
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")  # let composition errors reach us, not Hydra's report
    warnings_to_stdout()
    if "--help" in sys.argv[1:] or "-h" in sys.argv[1:]:
        speed_up_help()
    try:
        with exit_on_bad_input(), composing_once():  # a run's config composed once, not twice as Hydra does
            main()
    finally:
        no_collection_at_exit()
