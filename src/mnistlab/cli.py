"""Run a Hydra entry point and turn bad input into one clear line on stderr."""

import os
import sys
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Callable, Iterator

from mnistlab.errors import UserError

EXIT_BAD_INPUT = 2


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


def one_line(err: BaseException) -> str:
    parts = [fold(str(exc)) for exc in (err, err.__cause__) if exc is not None]
    return ": ".join(dict.fromkeys(part for part in parts if part))


def bad_input_types() -> tuple:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    return (UserError, HydraException, OmegaConfBaseException)


@contextmanager
def exit_on_bad_input() -> Iterator[None]:
    """Bad input becomes `error: <one line>` on stderr and exit code 2 (SystemExit passes through Hydra)."""
    try:
        yield
    except bad_input_types() as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT) from None


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def task_errors() -> AbstractContextManager:
    """Around a task body: a single run exits on bad input; a sweep's job raises, so that the sweeper
    records it as failed and runs the other jobs."""
    return nullcontext() if in_multirun() else exit_on_bad_input()


def run(main: Callable[[], object]) -> None:
    """Call a `@hydra.main` function whose task body also runs under exit_on_bad_input."""
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")  # let composition errors reach us, not Hydra's report
    if "--help" in sys.argv[1:] or "-h" in sys.argv[1:]:
        from mnistlab.help import speed_up_help

        speed_up_help()
    with exit_on_bad_input():
        main()
