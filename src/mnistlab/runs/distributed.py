"""One run in several processes (DDP): one run folder for all, only rank 0 writing, what -m cannot do, and
what a process knows and says when another one of its run stops (the watching itself: mnistlab.runs.ddp).

Lightning's ddp strategy starts the other processes itself, running the command line again with
hydra.run.dir set to the first process's folder. torchrun and srun start every process themselves, so
each would claim a run folder of its own: rank 0's is handed to the others through a TCP store (torchrun's
own, or one rank 0 serves for a moment where Lightning's will be). Imports nothing heavy unless launched so.
"""

import logging
import os
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Callable, List, Optional, Tuple

from mnistlab.errors import UserError

AGREE_TIMEOUT = timedelta(minutes=5)  # how long the other processes wait for rank 0's run folder
WHAT_WORKS = (
    "for a sweep of DDP jobs use hydra/launcher=slurm with hydra.launcher.tasks_per_node=<devices> "
    "(README: Several devices), or run each job as its own torchrun command without -m"
)


def launched() -> Optional[Tuple[int, int]]:
    """(rank, processes) of a process that torchrun or srun started as one of several, else None."""
    if "TORCHELASTIC_RUN_ID" in os.environ:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    # as Lightning tells a SLURM task (it leaves out interactive jobs, named bash or interactive)
    interactive = os.environ.get("SLURM_JOB_NAME") in ("bash", "interactive")
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1 and not interactive:
        return int(os.environ["SLURM_PROCID"]), int(os.environ["SLURM_NTASKS"])
    return None


def is_rank_zero() -> bool:
    """Before Lightning knows it: whether this process is the first of its run (torchrun, srun, submitit,
    or Lightning's own launcher, which gives its other processes LOCAL_RANK and NODE_RANK)."""
    ranks = ("RANK", "SLURM_PROCID", "SUBMITIT_LOCAL_GLOBALID", "LOCAL_RANK", "NODE_RANK")
    return all(os.environ.get(name, "0") == "0" for name in ranks)


def launch_arguments(argv: List[str]) -> List[str]:
    """This process's command line under torchrun or srun. -m is refused: every process would run the whole
    sweep. The processes other than rank 0 leave the run's saved config (.hydra/) to it, as Lightning's do."""
    launch = launched()
    if launch is None:
        return argv
    if "-m" in argv or "--multirun" in argv:
        raise UserError(f"-m under torchrun or srun would run the whole sweep in every process: {WHAT_WORKS}")
    quiet = "hydra.output_subdir=null"
    return argv + [quiet] if launch[0] != 0 and quiet not in argv else argv


def join_submitit_tasks() -> None:
    """A submitit job of several tasks (hydra/launcher=slurm or submitit_local, tasks_per_node > 1) is one
    DDP run: torch's variables for it, from submitit. On SLURM, Lightning reads SLURM's own instead."""
    if int(os.environ.get("SUBMITIT_LOCAL_NTASKS", "1")) > 1 and "MASTER_ADDR" not in os.environ:
        from submitit.helpers import TorchDistributedEnvironment

        TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


def quiet_other_ranks() -> None:
    """Only rank 0 writes the run's train.log: the other processes drop the log file Hydra gave them."""
    if is_rank_zero():
        return
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
        root.removeHandler(handler)
        handler.close()


def main_address() -> Tuple[str, int]:
    """Where torch.distributed's store of this launch is: torchrun's variables, else Lightning's for SLURM."""
    if "MASTER_ADDR" in os.environ and "MASTER_PORT" in os.environ:
        return os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
    from lightning.fabric.plugins.environments import SLURMEnvironment

    slurm = SLURMEnvironment()
    return slurm.main_address, slurm.main_port


def handed_from_rank_zero(make: Callable[[], str], rank: int, processes: int) -> str:
    """`make()` on rank 0; its result on every other process."""
    from torch.distributed import TCPStore

    host, port = main_address()
    agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"  # torchrun's agent serves one there
    serve = rank == 0 and not agent  # else rank 0 serves it until every process has read, then Lightning does
    store = TCPStore(
        host, port, None if agent else processes, is_master=serve, timeout=AGREE_TIMEOUT, wait_for_workers=False
    )
    key = f"mnistlab/run_dir/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"
    if rank == 0:
        store.set(key, make())
        deadline = time.monotonic() + AGREE_TIMEOUT.total_seconds()
        while serve and store.add(f"{key}/read", 0) < processes - 1:
            if time.monotonic() > deadline:  # e.g. python train.py in an sbatch script of several tasks, no srun
                raise UserError(
                    f"{processes} processes expected (SLURM_NTASKS or WORLD_SIZE), but only "
                    f"{store.add(f'{key}/read', 0) + 1} started within {AGREE_TIMEOUT}: start them with "
                    f"srun or torchrun"
                )
            time.sleep(0.01)
    value = store.get(key).decode()
    if rank != 0:
        store.add(f"{key}/read", 1)
    return value


def one_for_all_ranks(claim: Callable[[str], str]) -> Callable[[str], str]:
    """The `new_dir` resolver: under torchrun or srun, the folder rank 0 claimed, in every process."""

    def resolve(path: str) -> str:
        launch = launched()
        return claim(path) if launch is None else handed_from_rank_zero(lambda: claim(path), *launch)

    return resolve


# When one process of a run stops: what the others know of it, and the one line the console gets.

EXIT_PEER_STOPPED = 1  # not 2 (bad input): nothing was wrong with what was asked; resume= continues the run
# how gloo and c10d word a peer that is gone or silent (NCCL: an aborted communicator)
PEER_GONE = re.compile(
    r"connection (closed|reset) by peer|broken pipe|connection refused|timed out|timeout|"
    r"(read|write) error|communicator was aborted|transport/tcp",
    re.IGNORECASE,
)


@dataclass
class Peers:
    """This process's view of its run's other processes (one per process; see mnistlab.runs.ddp)."""

    children: List[Tuple[int, object]] = field(default_factory=list)  # rank 0: (rank, Popen) it started
    launcher: Optional[int] = None  # a process Lightning's launcher started: the launcher's pid
    watching: bool = False  # that process: whether it stops with the launcher now (during fit and test)
    dead: Optional[Tuple[int, Optional[int]]] = None  # (rank, exit code or -signal; None: unknown) of the first
    failing: bool = False  # this process is ending on an error of its own, and says so itself
    said: threading.Lock = field(default_factory=threading.Lock)  # held once a line was printed
    ended: threading.Event = field(default_factory=threading.Event)  # a peer's end is known (dead is set)


PEERS = Peers()


def say_once(line: Optional[str]) -> None:
    """Print the run's one `error:` line, if no other thread of this process printed one (where threads watch
    the run's other processes: mnistlab.runs.ddp)."""
    watched = bool(PEERS.children) or PEERS.launcher is not None
    if line and (not watched or PEERS.said.acquire(blocking=False)):
        print(f"error: {line}", file=sys.stderr, flush=True)


def stop_children() -> None:
    """Rank 0 under Lightning's launcher: end the processes it started, without a word from them."""
    for _, child in PEERS.children:
        if child.poll() is None:
            child.kill()


def failing_on_its_own() -> None:
    """This process ends on an error of its own and prints it: the processes it started stop silently."""
    PEERS.failing = True
    stop_children()


def record_end(rank: int, code: Optional[int]) -> bool:
    """Note how a process of the run ended; whether it was the first to."""
    first = PEERS.dead is None
    if first:
        PEERS.dead = (rank, code)
    PEERS.ended.set()
    return first


def world_size() -> int:
    """The processes of this run's process group: 1 when there is none (torch.distributed not even imported)."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return 1
    return dist.get_world_size()


def is_peer_failure(err: BaseException) -> bool:
    """Whether `err` came from another process of this run stopping: its end is known, or a collective of a
    process group of several failed the way gloo, c10d or NCCL say a peer is gone or silent."""
    if PEERS.dead is not None:
        return True
    dist = sys.modules.get("torch.distributed")
    error_kinds = (RuntimeError,) + ((dist.DistError,) if dist is not None and dist.is_available() else ())
    return isinstance(err, error_kinds) and world_size() > 1 and bool(PEER_GONE.search(str(err)))


def how_it_ended(code: Optional[int]) -> str:
    if code is None:
        return "stopped"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def continue_with() -> str:
    """How to go on from the run's newest checkpoint, as train.py says it after Ctrl-C."""
    from hydra.core.hydra_config import HydraConfig

    run_dir = os.path.relpath(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else "<run dir>"
    return f"continue with: python train.py resume={run_dir}"


def peer_stopped_line(err: Optional[BaseException] = None) -> Optional[str]:
    """The line for a run one of whose processes stopped; None where that process said why itself (it exited
    with code 2, bad input) or where the launcher of this process is alive to say it."""
    if PEERS.dead is None and PEERS.children:  # rank 0 under Lightning's launcher: which child, and how
        PEERS.ended.wait(timeout=2.0)
    if PEERS.dead is None and PEERS.launcher is not None:  # a process the launcher (rank 0) started
        deadline = time.monotonic() + 1.0
        while os.getppid() == PEERS.launcher and time.monotonic() < deadline:
            time.sleep(0.05)
        if os.getppid() == PEERS.launcher:
            return None  # rank 0 lives on: the line is its
        record_end(0, None)
    if PEERS.dead is not None:
        rank, code = PEERS.dead
        if code == 2:
            return None
        what = f"process {rank} of this DDP run {how_it_ended(code)}"
    elif not is_rank_zero():
        return None  # under torchrun or srun: rank 0 says it (or its launcher, for rank 0)
    else:
        detail = re.sub(r"^\[[^\]]*\]\s*", "", (str(err).strip().splitlines() or [""])[0]).split(". ")[0][:160]
        what = f"another process of this DDP run stopped ({detail})"
    return f"{what}; all its processes stopped; {continue_with()}"


def peer_stopped_exit_code() -> int:
    """Exit 2 after a process that stopped on bad input (its own line said which); else EXIT_PEER_STOPPED."""
    return 2 if PEERS.dead is not None and PEERS.dead[1] == 2 else EXIT_PEER_STOPPED
