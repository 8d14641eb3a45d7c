"""Lightning's ddp strategy, whose processes stop together: when one process of a run dies or fails, every
other one exits within seconds, and the console shows one `error:` line saying so and how to continue.

Without it, gloo notices a dead peer only inside a collective; a process waiting for a peer that never
connects, or never answers, waits for the process group's timeout (Lightning's default: 30 minutes); and
Lightning's launcher SIGKILLs every process, itself included, up to 5 s after one it started died, leaving a
traceback or nothing on the console. Here:

- rank 0 (Lightning's launcher) reaps each process it started as soon as it ends: Lightning's own watcher
  then finds nothing to kill. A process that ended badly stops the run: rank 0 ends the others and, unless
  it is ending on an error of its own, prints which process stopped and exits (mnistlab.runs.distributed);
- a process the launcher started exits when the launcher is gone, and says so if nobody else can;
- the process group's timeout bounds any other wait (`timeout_s`, conf/trainer/ddp_cpu.yaml).

Under torchrun or srun, the launcher ends the other processes itself; the timeout still applies.
"""

import os
import sys
import threading
import time
from datetime import timedelta
from typing import Optional

from lightning.fabric.plugins.environments import LightningEnvironment
from lightning.pytorch.strategies import DDPStrategy

from mnistlab.compat.lightning import relaunches_command_line
from mnistlab.errors import SweepRefused
from mnistlab.runs.distributed import (
    PEERS,
    WHAT_WORKS,
    failing_on_its_own,
    is_peer_failure,
    is_rank_zero,
    launched,
    peer_stopped_exit_code,
    peer_stopped_line,
    record_end,
    say_once,
    stop_children,
)
from mnistlab.settings.hydra_mode import in_multirun

GRACE_S = 5.0  # how long rank 0's own error handling may take to print its line, once a process it started died
LAST_WORD_S = 30.0  # its error handling's limit, should that hang


class StopTogetherDDP(DDPStrategy):
    """DDPStrategy(timeout=timeout_s seconds) whose processes stop together (see the module's docstring)."""

    def __init__(self, timeout_s: Optional[float] = None, **kwargs):
        if timeout_s is not None:
            kwargs["timeout"] = timedelta(seconds=timeout_s)
        super().__init__(**kwargs)

    def setup_environment(self) -> None:
        # before the process group: a process whose peer never connects must not wait for the timeout
        watch_peers(self)
        PEERS.watching = True
        super().setup_environment()

    def teardown(self) -> None:
        PEERS.watching = False  # between fit and test, and after the test: rank 0 may end first, as it finishes
        super().teardown()

    def on_exception(self, exception: BaseException) -> None:
        super().on_exception(exception)
        if is_rank_zero() and not is_peer_failure(exception):
            failing_on_its_own()  # its line (cli) is the run's: the processes it started stop without one


def watch_peers(strategy: DDPStrategy) -> None:
    """Once per process: rank 0 watches the processes Lightning's launcher started, those watch the launcher."""
    if PEERS.children or PEERS.launcher is not None:
        return
    started = getattr(strategy.launcher, "procs", None) or []  # Lightning's launcher's list of them, public
    if started:
        PEERS.children = [(rank, child) for rank, child in enumerate(started, start=1)]
        for rank, child in PEERS.children:
            threading.Thread(target=reap, args=(rank, child), name=f"reap-process-{rank}", daemon=True).start()
    elif started_by_lightning(strategy) and not is_rank_zero():
        PEERS.launcher = os.getppid()
        threading.Thread(target=follow_launcher, name="follow-launcher", daemon=True).start()


def started_by_lightning(strategy: DDPStrategy) -> bool:
    """Whether Lightning's launcher started this run's processes (not torchrun, srun or submitit's local tasks,
    whose variables Lightning's LightningEnvironment reads as well)."""
    own_variables = launched() is None and "SUBMITIT_LOCAL_GLOBALID" not in os.environ
    return isinstance(strategy.cluster_environment, LightningEnvironment) and own_variables


def reap(rank: int, child) -> None:
    """Rank 0: wait for a process it started to end; if it ended badly, end the run.

    Reaping it here, at once, leaves Lightning's own watcher a process already gone (Popen reads that as exit
    code 0), so it no longer SIGKILLs everything before anything could be said."""
    try:
        _, status = os.waitpid(child.pid, 0)
    except ChildProcessError:  # reaped by Popen already (it ended, and was polled, before this thread ran)
        status = None
    code = os.waitstatus_to_exitcode(status) if status is not None else child.returncode
    if not code or PEERS.failing or not record_end(rank, code):  # finished; stopped by rank 0; or not the first
        return
    stop_children()
    started = time.monotonic()
    while True:  # rank 0's main thread usually hits a collective at once and ends with the line (cli)
        waited = time.monotonic() - started
        if waited > LAST_WORD_S or (waited > GRACE_S and not PEERS.failing):
            break
        time.sleep(0.05)
    exit_now()


def follow_launcher() -> None:
    """A process Lightning's launcher started: when the launcher is gone, exit (and say so, as the launcher
    can no longer: it would have ended this process first, failing on its own)."""
    while os.getppid() == PEERS.launcher or not PEERS.watching:
        time.sleep(0.2)
    record_end(0, None)
    exit_now()


def exit_now() -> None:
    """The line, then exit from this watching thread: the main thread may wait on the stopped process in a
    collective, and Python's own exit would wait for it (os._exit: no cleanup, as after Lightning's SIGKILL)."""
    say_once(peer_stopped_line())
    sys.stdout.flush()
    os._exit(peer_stopped_exit_code())


def refuse_relaunch_in_sweep(trainer) -> None:
    """A sweep job whose trainer would start its other processes by running the command line again: each of
    them would run the whole sweep (-m is on that command line)."""
    relaunches = (
        relaunches_command_line(trainer.strategy)
        and not trainer.strategy.cluster_environment.creates_processes_externally
    )
    if in_multirun() and relaunches:
        raise SweepRefused(
            f"-m with trainer.devices={trainer.num_devices}: Lightning would start the other "
            f"processes by running the whole sweep again; {WHAT_WORKS}"
        )
