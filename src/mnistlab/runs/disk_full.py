"""A disk that fills up during training: the run stops with one line that says how to go on. Checkpoints are written
atomically (mnistlab.runs.checkpoint_io), so those saved before are intact and `resume=` continues from the newest."""

import errno
import os
from typing import Optional

from mnistlab.errors import UserError

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def no_space(err: BaseException) -> Optional[OSError]:
    """The full disk's (or exceeded quota's) OSError behind `err`, if there is one: Lightning may raise another
    error while it stops (its loggers write too), with the first as its context."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in NO_SPACE:
            return err
        err = err.__cause__ or err.__context__
    return None


def disk_full_error(err: BaseException, run_dir, step: int) -> Optional[UserError]:
    """The one-line error for a run that stopped at `step` for want of space, or None for another failure."""
    full = no_space(err)
    if full is None:
        return None
    where = os.path.relpath(full.filename) if isinstance(full.filename, str) else "writing the run"
    run_dir = os.path.relpath(run_dir)
    return UserError(
        f"{where}: {full.strerror or os.strerror(full.errno)}: training stopped at step {step}; the checkpoints "
        f"saved before are intact: free some space, then continue with: python train.py resume={run_dir}"
    )
