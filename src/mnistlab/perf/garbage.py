"""Python's garbage collector kept off the objects of start-up: importing torch, Lightning and their
dependencies makes millions of objects that live as long as the process. Collections over them find
nothing to free (docs/performance.md has the measurements). perf/speedups.py's FreezeStartupObjects
keeps them out of the collections made while fitting."""

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collections_paused() -> Iterator[None]:
    """No collections while start-up imports and builds: each one would walk every object made so far.
    Those objects are then frozen (out of the collector's reach; FreezeStartupObjects unfreezes them when
    fitting ends), or the first collection after the pause would walk them all at once."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        gc.freeze()
    finally:
        if enabled:
            gc.enable()


def no_collection_at_exit() -> None:
    """When the process is about to end: interpreter shutdown's collections would walk every live object
    once more before the process exits anyway. Objects are still released by reference counts, and atexit
    handlers (loggers' flushes) still run."""
    gc.freeze()
