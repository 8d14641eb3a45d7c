"""An attacker's harness for files received from others (issue #21): checkpoints, run folders, sweep folders,
pictures and exports are data, and every entry point must treat them so.

The contract every case is held to (`violations` below):
1. the outcome is exit 0, or exit 2 with stderr being exactly one line that starts `error: ` (no traceback);
   predict.py given good and bad pictures may also exit 2 with one `error:` line per bad picture while the good
   ones are predicted on stdout (a case allows that with `per_image=True`);
2. no canary file exists afterwards (what a payload would create if it ran);
3. the folders outside the run (`outside/`, the shared data set, the real run the cases are copies of) are
   unchanged, file by file: sizes, mtimes, links, nothing added or removed;
4. the case ends within its time bound, and within the memory limit that the worker sets on itself with
   resource.setrlimit (RLIMIT_DATA: what it uses after importing torch and Lightning, plus ATTACK_MEMORY_MB,
   1536 by default); a bomb must be refused, not end in a MemoryError.

The tools run in-process, in one worker subprocess that the session's attack modules share (`shared_worker`,
`worker_main`): each case sets sys.argv and the working directory and runs the entry point through its
`__main__` path (runpy), its stdout and stderr captured at the file-descriptor level, its SystemExit code taken
as the exit status and anything else that escapes printed as a traceback with status 1, as Python itself would.
Between cases the worker puts back what a case may change of the process: Hydra's singletons, logging, warnings
filters (and their once-per-location registries), environment variables, sys.path, signal handlers, the garbage
collector's frozen objects; a case that leaves threads running or memory held ends the worker, and the next
case gets a fresh one (`left_behind`). A case that kills the worker or hangs past its bound is reported as such
and the others go on in a new worker. tests/test_received_files.py checks this emulation against real
processes (test_the_worker_answers_as_a_real_process).

Each case works on fresh copies (`Scene`) of a real run folder, checkpoint and sweep folder, made once per
session by a tiny real training (`base_artifacts`).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import queue
import re
import resource
import runpy
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
SCRIPTS = ("train.py", "eval.py", "predict.py", "export.py", "compare.py")
MODULES = {"report": "mnistlab.tasks.report", "summary": "mnistlab.tasks.summary"}  # python -m <module>
MEMORY_HEADROOM = int(os.environ.get("ATTACK_MEMORY_MB", "1536")) * 2**20
GRACE_S = 30  # beyond a case's own time bound, before the parent gives up on the worker and kills it
BASE_RUN = [  # the real run every case gets a copy of: a tiny MLP, a few steps (tests/helpers: quick_overrides)
    "model=mlp",
    "model.net.hidden=[16]",
    "data.val_size=100",
    "data.batch_size=32",
    "data.eval_batch_size=100",
    "data.download=false",
    "+trainer.enable_progress_bar=false",
    "+trainer.enable_model_summary=false",
    "+trainer.limit_train_batches=3",
    "trainer.log_every_n_steps=1",
    "trainer.max_epochs=1",
    "threads=1",
    "report=false",
]
# The commands the cases run: {run} etc. are the case's Scene paths
RESUME = ("train.py", "resume={run}", "trainer.max_epochs=2", "threads=1")
CKPT_IN_RUN = ("train.py", "ckpt_path={ckpt}", "trainer.max_epochs=2", "threads=1")
NEW_RUN = (  # a checkpoint from elsewhere: a new run from this command line's config
    "train.py",
    "ckpt_path={loose}",
    *[arg for arg in BASE_RUN if not arg.startswith("trainer.max_epochs")],
    "trainer.max_epochs=2",
    "data.data_dir={data}",
    "hydra.run.dir={new_run}",
)
EVAL = ("eval.py", "ckpt_path={run}", "threads=1")
EVAL_CKPT = ("eval.py", "ckpt_path={ckpt}", "threads=1")
WATCH = ("eval.py", "ckpt_path={run}", "watch=true", "watch.interval=0.2", "watch.timeout=5", "threads=1")
PREDICT = ("predict.py", "ckpt_path={ckpt}", "images={image}", "threads=1")
PREDICT_RUN = ("predict.py", "ckpt_path={run}", "images={image}", "threads=1")
EXPORT = ("export.py", "ckpt_path={ckpt}", "format=torchscript", "check_images=8", "threads=1")
ONNX = ("export.py", "ckpt_path={ckpt}", "format=onnx", "check_images=8", "threads=1")
REPORT = ("report", "{run}")
COMPARE = ("compare.py", "{run}", "{sweep}")
SUMMARY = ("summary", "{sweep}")
# the callbacks of conf/callbacks/default.yaml, as their state is keyed in a checkpoint
TOP_K, LAST, RECENT = (
    "ModelCheckpoint{'monitor': 'val/acc'",
    "ModelCheckpoint{'monitor': None",
    "ModelCheckpoint{'monitor': 'step'",
)


# ---------------------------------------------------------------------------------------------------
# A case, and the contract


@dataclass(frozen=True)
class Case:
    """One crafted input. `args`: the entry point (a root script, or `report` / `summary` for `python -m`)
    then its arguments, with {run}, {ckpt}, ... standing for the paths of the case's `Scene`. `craft` makes
    the input from the scene's fresh copies. `refuse`: only exit 2 is right. `per_image`: predict.py's
    one-error-line-per-bad-picture outcome is allowed."""

    id: str
    kind: str
    args: tuple
    craft: Callable[["Scene"], None] = lambda scene: None
    refuse: bool = False
    per_image: bool = False  # predict.py with {image} and bad pictures: the good one is still predicted
    bomb: bool = False  # a denial of service: refused (exit 2) before the allocation, not by its failure
    slow: bool = False  # one more variant of its class: in `pytest -m slow` only
    timeout: float = 60.0
    env: tuple = ()  # (name, value) pairs set during the case, values filled like args


def stderr_lines(result: dict) -> List[str]:
    return result["stderr"].strip().splitlines() if result["stderr"].strip() else []


def outcome(result: dict) -> str:
    """exit 0 | exit 2 one line | exit 2 per image | other (a violation of point 1)."""
    if result.get("crash"):
        return "other"
    lines = stderr_lines(result)
    clean = "Traceback" not in result["stderr"] and all(line.startswith("error: ") for line in lines)
    if result["rc"] == 0:
        return "exit 0"
    if result["rc"] == 2 and clean and len(lines) == 1:
        return "exit 2 one line"
    if result["rc"] == 2 and clean and len(lines) > 1 and result["stdout"].strip():
        return "exit 2 per image"
    return "other"


def violations(case: Case, result: dict) -> List[str]:
    """What of the contract a case's result breaks; [] when it holds."""
    found = []
    kind = outcome(result)
    if result.get("crash"):
        found.append(f"the worker: {result['crash']}")
    elif kind == "other" or (kind == "exit 2 per image" and not case.per_image):
        found.append(f"exit {result['rc']}: {how_it_failed(result)}")
    elif case.per_image and kind.startswith("exit 2") and "digit.png: " not in result["stdout"]:
        found.append("the good picture (digit.png) was not predicted beside the bad ones")
    elif (case.refuse or case.bomb) and kind == "exit 0":
        found.append("exit 0, but this input must be refused (exit 2)")
    elif case.bomb and ALLOCATION_FAILED.search(result["stderr"]):
        found.append(f"refused only because an allocation failed under the memory limit: {how_it_failed(result)}")
    found += [f"canary created: {path}" for path in result.get("canaries", [])]
    found += [f"outside changed: {change}" for change in result.get("changes", [])]
    if result.get("peak_mb") and result.get("limit_mb") and result["peak_mb"] > result["limit_mb"]:
        found.append(f"peak memory {result['peak_mb']} MB over the limit {result['limit_mb']} MB")
    return found


ALLOCATION_FAILED = re.compile(r"can't allocate memory|Cannot allocate memory|MemoryError|out of memory", re.I)


def how_it_failed(result: dict) -> str:
    """One line: a traceback's exception line (and where it was raised), else the first lines of stderr."""
    if result.get("crash"):
        return result["crash"]
    if result.get("timed_out"):
        return f"no end within {result['timeout']:g} s"
    lines = stderr_lines(result)
    if "Traceback" in result["stderr"]:
        frames = [n for n, line in enumerate(lines) if line.startswith("  File ")]
        after = lines[frames[-1] + 1 :] if frames else lines
        exception = next((line for line in after if not line.startswith(" ")), lines[-1])  # past the code lines
        where = lines[frames[-1]].strip().split(", in ")[0].replace("File ", "") if frames else ""
        return f"{exception[:300]} (at {where})" if where else exception[:300]
    if not lines:
        return "no message on stderr"
    shown = " | ".join(lines[:3])
    return f"{len(lines)} stderr lines: {shown[:400]}"


def describe(case: Case, result: dict, found: List[str]) -> str:
    notes = "".join(f"\n  note: {note}" for note in result.get("notes", []))
    return (
        f"{case.id} [{case.kind}] {' '.join(case.args)}{notes}\n"
        + "\n".join(f"  - {problem}" for problem in found)
        + f"\n  stderr (tail): {result['stderr'][-1500:]}\n  stdout (tail): {result['stdout'][-500:]}"
    )


# ---------------------------------------------------------------------------------------------------
# Snapshots and canaries


def snapshot(folder) -> Dict[str, tuple]:
    """Every entry below `folder` (links not followed): kind, size, mtime, link target."""
    found: Dict[str, tuple] = {}
    folder = str(folder)
    if not os.path.lexists(folder):
        return found

    def add(path: str) -> None:
        info = os.lstat(path)
        link = os.readlink(path) if stat.S_ISLNK(info.st_mode) else None
        size = info.st_size if stat.S_ISREG(info.st_mode) else None
        found[os.path.relpath(path, folder)] = (stat.S_IFMT(info.st_mode), size, info.st_mtime_ns, link)

    add(folder)
    for top, dirs, files in os.walk(folder):
        for name in dirs + files:
            add(os.path.join(top, name))
    return found


def differences(before: dict, after: dict, limit: int = 8) -> List[str]:
    removed = sorted(set(before) - set(after))
    added = sorted(set(after) - set(before))
    changed = sorted(path for path in set(before) & set(after) if before[path] != after[path])
    lines = [f"removed {path}" for path in removed] + [f"added {path}" for path in added]
    lines += [f"changed {path}" for path in changed]
    return lines[:limit] + ([f"... {len(lines) - limit} more"] if len(lines) > limit else [])


# ---------------------------------------------------------------------------------------------------
# The worker: runs cases in-process, one after another


class CaseTimeout(BaseException):
    """Raised by SIGALRM in the worker when a case runs past its time bound (a BaseException: no
    `except Exception` of the code under test swallows it)."""


def status_kb(field_name: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    return 0


def reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM, the peak resident size
    except OSError:
        pass


def limit_memory() -> dict:
    """RLIMIT_DATA (private writable memory: the heap and anonymous mappings, where every big allocation goes)
    at what the worker uses now, torch and Lightning imported, plus MEMORY_HEADROOM. RLIMIT_AS would count the
    address space that the CUDA and other libraries map but never touch; DATA does not."""
    data = status_kb("VmData") * 1024
    limit = data + MEMORY_HEADROOM
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    rss = status_kb("VmRSS") * 1024
    # the resident size may pass the DATA limit's headroom by file-backed and shared pages: 10 % of slack
    return {"limit_mb": int((rss + 1.1 * MEMORY_HEADROOM) // 2**20), "data_limit_mb": limit // 2**20}


def warm_up() -> None:
    """What every case would import anyway: imported once, before the memory limit is measured."""
    import lightning.pytorch  # noqa: F401
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
    import torch

    import mnistlab.tasks.compare  # noqa: F401
    import mnistlab.tasks.evaluate  # noqa: F401
    import mnistlab.tasks.export  # noqa: F401
    import mnistlab.tasks.predict  # noqa: F401
    import mnistlab.tasks.report  # noqa: F401
    import mnistlab.tasks.summary  # noqa: F401
    import mnistlab.tasks.train  # noqa: F401

    torch.set_num_threads(1)


class ProcessState:
    """What a case may change of the worker process, saved before it and put back after it."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM)

    def __init__(self):
        import torch

        self.cwd, self.argv, self.path = os.getcwd(), list(sys.argv), list(sys.path)
        self.environ = dict(os.environ)
        self.streams = (sys.stdout, sys.stderr, sys.stdin)
        self.handlers = {signum: signal.getsignal(signum) for signum in self.SIGNALS}
        self.threads = torch.get_num_threads()
        manager = logging.Logger.manager
        self.loggers = {
            name: (logger.level, list(logger.handlers), logger.propagate, logger.disabled)
            for name, logger in [("", logging.getLogger()), *manager.loggerDict.items()]
            if isinstance(logger, logging.Logger)
        }
        self.logging_disabled = logging.root.manager.disable

    def restore(self) -> None:
        import torch

        os.chdir(self.cwd)
        sys.argv[:], sys.path[:] = self.argv, self.path
        os.environ.clear()
        os.environ.update(self.environ)
        sys.stdout, sys.stderr, sys.stdin = self.streams
        for signum, handler in self.handlers.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        torch.set_num_threads(self.threads)
        logging.disable(self.logging_disabled)
        manager = logging.Logger.manager
        for name, logger in [("", logging.getLogger()), *manager.loggerDict.items()]:
            if not isinstance(logger, logging.Logger):
                continue
            level, handlers, propagate, disabled = self.loggers.get(name, (logging.NOTSET, [], True, False))
            for handler in logger.handlers:
                if handler not in handlers:
                    try:
                        handler.close()  # a run's train.log
                    except Exception:  # noqa: BLE001 (a handler of the code under test: whatever it does)
                        pass
            logger.setLevel(level)
            logger.handlers[:] = handlers
            logger.propagate, logger.disabled = propagate, disabled


def reset_hydra() -> None:
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    GlobalHydra.instance().clear()
    HydraConfig.instance().cfg = None


def entry_point(tool: str, args: List[str]) -> Callable[[], None]:
    """The entry point's `__main__` path, as `python <script> args` or `python -m <module> args` runs it."""
    if tool.endswith(".py"):  # SCRIPTS, or another script of the checkout (benchmarks/throughput.py)
        script = str(ROOT / tool)
        sys.argv[:] = [script, *args]
        sys.path.insert(0, os.path.dirname(script))  # as `python <script>` does (ProcessState puts sys.path back)
        return lambda: runpy.run_path(script, run_name="__main__")
    module = MODULES[tool]
    sys.argv[:] = ["-m", *args]
    return lambda: runpy.run_module(module, run_name="__main__", alter_sys=True)


def exit_status(main: Callable[[], None], timeout: float) -> tuple:
    """(exit status, timed out) of main(), as the interpreter would end: SystemExit's code, else a traceback
    printed and status 1."""

    fired = []

    def expire(signum, frame):
        fired.append(True)
        raise CaseTimeout()

    signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        try:
            main()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except CaseTimeout:
        return 124, True
    except SystemExit as stop:
        code = stop.code
        if not isinstance(code, (int, type(None))):
            print(code, file=sys.stderr)
        status = (code or 0) if isinstance(code, (int, type(None))) else 1
    except BaseException:  # noqa: BLE001 (what escapes an entry point: Python prints it and exits 1)
        traceback.print_exc()
        status = 1
    else:
        status = 0
    # the code under test may have caught CaseTimeout and ended otherwise: the time bound was still passed
    return (124, True) if fired else (status, False)


def captured(path: Path, limit: int = 60_000) -> str:
    text = path.read_text(errors="replace")
    return text if len(text) <= limit else text[: limit // 2] + "\n[...]\n" + text[-limit // 2 :]


COLLECT_EVERY = 10  # cases; a full collection walks every object of torch and Lightning (~0.3 s)
since_collection, since_collection_baseline = [0], [0]  # cases since the last collection; RSS after warm_up


def collect_garbage() -> None:
    """What the entry point's no_collection_at_exit froze (and its start-up pause) back to the collector; a full
    collection every COLLECT_EVERY cases, or as soon as the worker holds 300 MB more than after warm_up."""
    gc.unfreeze()
    gc.enable()
    since_collection[0] += 1
    if since_collection[0] >= COLLECT_EVERY or status_kb("VmRSS") * 1024 > since_collection_baseline[0] + 300 * 2**20:
        gc.collect()
        since_collection[0] = 0


def run_job(job: dict, memory: dict) -> dict:
    """One case in this process: its checks before and after, its output captured."""
    watched = {folder: snapshot(folder) for folder in job["outside"]}
    state = ProcessState()
    out_path, err_path = Path(job["capture"]) / "stdout", Path(job["capture"]) / "stderr"
    Path(job["capture"]).mkdir(parents=True, exist_ok=True)
    saved_fds = os.dup(1), os.dup(2)
    started = time.monotonic()
    try:
        reset_hydra()
        os.chdir(job["cwd"])
        sys.path[:0] = job.get("sys_path", [])
        os.environ.update(job.get("env", {}))
        reset_peak()
        with open(out_path, "wb") as out, open(err_path, "wb") as err, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*found in sys.modules after import of package.*")
            sys.stdout.flush(), sys.stderr.flush()
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            try:
                rc, timed_out = exit_status(entry_point(job["tool"], job["args"]), job["timeout"])
            finally:
                sys.stdout.flush(), sys.stderr.flush()
                os.dup2(saved_fds[0], 1)
                os.dup2(saved_fds[1], 2)
        peak_mb = status_kb("VmHWM") // 1024
    finally:
        for fd in saved_fds:
            os.close(fd)
        state.restore()
        reset_hydra()
        collect_garbage()
    return {
        "id": job["id"],
        "rc": rc,
        "timed_out": timed_out,
        "timeout": job["timeout"],
        "seconds": round(time.monotonic() - started, 2),
        "stdout": captured(out_path),
        "stderr": captured(err_path),
        "canaries": [path for path in job["canaries"] if os.path.lexists(path)],
        "changes": [
            f"{folder}: {change}"
            for folder, before in watched.items()
            for change in differences(before, snapshot(folder))
        ],
        "peak_mb": peak_mb,
        "limit_mb": memory["limit_mb"],
    }


def worker_main() -> None:
    """The worker's loop: one JSON job per line on stdin, one JSON result per line on (the original) stdout."""
    jobs = os.fdopen(os.dup(0), "r")
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)  # a case reads no jobs
    os.dup2(2, 1)  # stray output between cases goes to the worker's log, not into the replies
    warm_up()
    memory = limit_memory()
    since_collection_baseline[0] = status_kb("VmRSS") * 1024
    replies.write(json.dumps({"ready": True, **memory}) + "\n")
    threads, data = threading.active_count(), status_kb("VmData")
    for line in jobs:
        job = json.loads(line)
        try:
            result = run_job(job, memory)
        except BaseException as err:  # noqa: BLE001 (the harness's own failure: reported, the worker goes on)
            result = {"id": job["id"], "crash": f"harness error: {type(err).__name__}: {err}", "rc": None}
            result.update(stdout="", stderr=traceback.format_exc())
        result["recycle"] = left_behind(threads, data)
        replies.write(json.dumps(result) + "\n")
        if result["recycle"]:
            return  # the parent starts a fresh worker for the next case


def left_behind(threads: int, data_kb: int) -> Optional[str]:
    """Why the next case would not start as a fresh process would: threads a case left running (torch.compile's
    workers, say), or memory it left allocated (a quarter of the headroom). None when it would."""
    if threading.active_count() > threads:
        return f"{threading.active_count() - threads} threads left running"
    grown = (status_kb("VmData") - data_kb) * 1024
    if grown > MEMORY_HEADROOM // 4:
        gc.collect()
        grown = (status_kb("VmData") - data_kb) * 1024
    return f"{grown // 2**20} MB more memory held" if grown > MEMORY_HEADROOM // 4 else None


class Worker:
    """The parent's side: starts the worker, sends it one case at a time, and starts a new one when a case
    kills it or runs GRACE_S past its time bound (that case is reported as a crash)."""

    def __init__(self, log_dir: Path):
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.process: Optional[subprocess.Popen] = None
        self.starts = 0
        self.recycled: List[str] = []  # after which cases, and why, the worker was replaced

    def start(self) -> None:
        self.starts += 1
        log = open(self.log_dir / f"worker-{self.starts}.log", "w")
        env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(TESTS)])}
        env.pop("HYDRA_FULL_ERROR", None)
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from helpers.attack import worker_main; worker_main()"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env,
        )
        log.close()
        self.replies: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, args=(self.process, self.replies), daemon=True).start()
        ready = self._reply(300)
        if not ready or not ready.get("ready"):
            raise RuntimeError(f"the attack worker did not start: see {self.log_dir}")
        self.memory = ready

    @staticmethod
    def _read(process, replies) -> None:
        for line in process.stdout:
            replies.put(json.loads(line))
        replies.put(None)  # ended

    def _reply(self, timeout: float) -> Optional[dict]:
        try:
            return self.replies.get(timeout=timeout)
        except queue.Empty:
            return None

    def send(self, job: dict) -> None:
        if self.process is None or self.process.poll() is not None:
            self.start()
        self.process.stdin.write(json.dumps(job) + "\n")
        self.process.stdin.flush()

    def receive(self, job: dict) -> dict:
        reply = self._reply(job["timeout"] + GRACE_S)
        if reply is not None:
            if reply.get("recycle"):  # the worker ends itself: the next case gets a fresh one
                self.recycled.append(f"{job['id']}: {reply['recycle']}")
                try:
                    self.process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    self.stop()
            return reply
        hung = self.process.poll() is None
        self.stop()
        crash = f"no reply within {job['timeout'] + GRACE_S:g} s" if hung else f"died ({self.process.returncode})"
        return {"id": job["id"], "rc": None, "crash": crash, "stdout": "", "stderr": "", "timed_out": hung}

    def run(self, job: dict) -> dict:
        self.send(job)
        return self.receive(job)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # our own child, by its handle
            self.process.wait()

    def close(self) -> None:
        """The end of the session: no more jobs, so the worker's loop ends and it exits as a process does (line
        coverage, `pytest --cov`, is written at exit); killed if it does not within a minute."""
        if self.process is not None and self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.stop()


# ---------------------------------------------------------------------------------------------------
# The real run, once per session, and each case's fresh copies of it


@dataclass
class Base:
    """A real run folder (train.py, a few steps), a sweep folder made of two copies of it with their
    job.json records, and a digit picture."""

    folder: Path
    data: Path

    @property
    def run(self) -> Path:
        return self.folder / "run"

    @property
    def sweep(self) -> Path:
        return self.folder / "sweep"

    @property
    def image(self) -> Path:
        return self.folder / "digit.png"


def base_artifacts(base_temp: Path, data: Path, worker: Worker) -> Base:
    base = Base(Path(base_temp) / "attack-base", Path(data))
    if (base.folder / "done").exists():
        return base
    shutil.rmtree(base.folder, ignore_errors=True)
    base.folder.mkdir(parents=True)
    result = worker.run(
        {
            "id": "base-run",
            "tool": "train.py",
            "args": [*BASE_RUN, f"data.data_dir={data}", f"hydra.run.dir={base.run}"],
            "cwd": str(base.folder),
            "capture": str(base.folder / "capture"),
            "canaries": [],
            "outside": [],
            "timeout": 300,
        }
    )
    if result.get("rc") != 0:
        raise RuntimeError(f"the real run failed: {result.get('crash')} {result['stderr'][-3000:]}")
    make_sweep(base)
    write_digit(base.image)
    (base.folder / "done").write_text("ok\n")
    return base


def make_sweep(base: Base) -> None:
    """<sweep>/0 and /1: copies of the run, recorded as a sweep job records itself (sweeps/records.py)."""
    metrics = json.loads((base.run / "metrics.json").read_text())
    for job, lr in enumerate(("0.002", "0.01")):
        job_dir = base.sweep / str(job)
        shutil.copytree(base.run, job_dir, symlinks=True)
        overrides = [line[2:] for line in (job_dir / ".hydra" / "overrides.yaml").read_text().splitlines()]
        overrides.append(f"optimizer.lr={lr}")
        (job_dir / ".hydra" / "overrides.yaml").write_text("".join(f"- {item}\n" for item in overrides))
        record = {"status": "ok", "seconds": 1.5 + job, "overrides": overrides, "metrics": metrics}
        (job_dir / "job.json").write_text(json.dumps(record, indent=2))
    (base.sweep / "multirun.yaml").write_text("hydra:\n  sweeper:\n    metric: val/acc\n    direction: maximize\n")


def write_digit(path: Path) -> None:
    import numpy as np
    from PIL import Image

    from helpers import synthetic_digits

    images, _ = synthetic_digits(1, seed=5)
    Image.fromarray(images[0].astype(np.uint8)).resize((56, 56)).save(path)


@dataclass
class Scene:
    """A case's own folder: fresh copies of the real run, of one of its checkpoints outside any run
    (downloads/model.ckpt), of the sweep and of the picture; an `outside` folder of the user's that must be left
    alone; a `canary` path that a payload would create; `cwd`, where the tool runs."""

    root: Path
    base: Base
    notes: List[str] = field(default_factory=list)

    def __post_init__(self):
        self.root.mkdir(parents=True)
        shutil.copytree(self.base.run, self.run, symlinks=True)
        shutil.copytree(self.base.sweep, self.sweep, symlinks=True)
        self.loose.parent.mkdir()
        shutil.copy2(self.ckpt, self.loose)
        shutil.copy2(self.base.image, self.image)
        self.cwd.mkdir()
        (self.outside / "notes").mkdir(parents=True)
        (self.outside / "precious.txt").write_text("the user's own file\n")
        (self.outside / "notes" / "keep.md").write_text("# kept\n")
        (self.outside / "old.ckpt").write_bytes(b"not yours to delete\n")

    run = property(lambda self: self.root / "run")
    sweep = property(lambda self: self.root / "sweep")
    loose = property(lambda self: self.root / "downloads" / "model.ckpt")
    image = property(lambda self: self.root / "digit.png")
    cwd = property(lambda self: self.root / "cwd")
    outside = property(lambda self: self.root / "outside")
    canary = property(lambda self: self.root / "canary")
    ckpt = property(lambda self: self.run / "checkpoints" / "last.ckpt")
    best = property(lambda self: next((self.run / "checkpoints").glob("epoch*.ckpt")))
    ckpt_dir = property(lambda self: os.path.realpath(self.run / "checkpoints"))  # ModelCheckpoint's dirpath
    new_run = property(lambda self: self.cwd / "new-run")  # where `train.py ckpt_path=<loose>` writes

    def names(self) -> Dict[str, str]:
        names = ("run", "sweep", "loose", "image", "cwd", "outside", "canary", "ckpt", "ckpt_dir", "new_run", "root")
        return {name: str(getattr(self, name)) for name in names} | {"data": str(self.base.data)}

    def fill(self, text: str) -> str:
        """{name} of names() replaced by its path (only those: Hydra's own braces stay)."""
        for name, value in self.names().items():
            text = text.replace("{" + name + "}", value)
        return text

    def job(self, case: Case, capture: Path) -> dict:
        return {
            "id": case.id,
            "tool": case.args[0],
            "args": [self.fill(arg) for arg in case.args[1:]],
            "cwd": str(self.cwd),
            "capture": str(capture),
            "canaries": [str(self.canary), str(self.canary) + ".load", str(self.canary) + ".run"],
            "outside": [str(self.outside), str(self.base.data), str(self.base.run), str(self.base.sweep)],
            "timeout": case.timeout,
            "sys_path": [str(self.root / "modules")],
            "env": {name: self.fill(value) for name, value in case.env},
        }


def run_cases(cases: List[Case], base: Base, worker: Worker, folder: Path) -> Dict[str, dict]:
    """Crafts each case in its own Scene and runs it in the worker: {case id: result}. The next case is crafted
    while the worker runs the one before."""
    results: Dict[str, dict] = {}
    running = None  # (case, scene, job) in the worker
    for case in [*cases, None]:
        scene = None
        if case is not None:
            scene = Scene(folder / case.id, base)
            try:
                case.craft(scene)
            except Exception as err:  # noqa: BLE001 (a crafting bug: reported on its case, the others still run)
                results[case.id] = {"id": case.id, "rc": None, "crash": f"crafting failed: {err!r}", "stdout": ""}
                results[case.id]["stderr"] = traceback.format_exc()
                scene = None
        if running is not None:
            done, done_scene, job = running
            results[done.id] = {**worker.receive(job), "notes": done_scene.notes}
            running = None
        if scene is not None:
            job = scene.job(case, folder / "capture" / case.id)
            worker.send(job)
            running = (case, scene, job)
    return results


_shared: Dict[str, Worker] = {}


def shared_worker(log_dir: Path) -> Worker:
    """One worker for the session's attack modules (its imports are paid once); stopped when pytest exits."""
    if "worker" not in _shared:
        import atexit

        _shared["worker"] = Worker(log_dir)
        atexit.register(_shared["worker"].close)
    return _shared["worker"]


def plain_job(tool: str, args: List[str], cwd, capture, timeout: float) -> dict:
    """A job for the worker that only runs `tool args` in `cwd`: no canaries, no folders watched."""
    args = [str(arg) for arg in args]
    job_id = " ".join([tool, *args])[:200]
    return {"id": job_id, "tool": tool, "args": args, "cwd": str(cwd), "capture": str(capture), "canaries": [],
            "outside": [], "timeout": timeout}  # fmt: skip


def close_shared_worker() -> None:
    """The end of the session (tests/conftest.py): before pytest-cov gathers the line coverage, which the worker
    writes as it exits."""
    worker = _shared.pop("worker", None)
    if worker is not None:
        worker.close()


def selected(request, test_name: str, param: str) -> list:
    """The `param` of each selected item of `test_name` in the requesting module (-k, ids on the command line)."""
    return [
        item.callspec.params[param]
        for item in request.session.items
        if getattr(item, "originalname", None) == test_name and item.module is request.module
    ]


def tally(cases: List[Case], results: Dict[str, dict]) -> dict:
    counts = {"exit 0": 0, "exit 2 one line": 0, "exit 2 per image": 0, "violations": 0}
    for case in cases:
        result = results[case.id]
        if violations(case, result):
            counts["violations"] += 1
        else:
            counts[outcome(result)] += 1
    return counts


def report_line(request, text: str) -> None:
    """A line on pytest's terminal even without -s."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        print(text)
        return
    with capture.global_and_fixture_disabled():  # a fixture's teardown runs with the output captured
        reporter.write_line(text)


def run_and_summarise(request, tmp_path_factory, mnist_dir, cases: list, name: str, label: str, noun: str, details):
    """Run `cases` in the shared worker, write <basetemp>/attack-<name>-summary.json (the counts, and what
    `details(results)` adds) and print one line of counts at the end: {case id: result}."""
    worker = shared_worker(tmp_path_factory.getbasetemp() / "attack-logs")
    started = time.monotonic()
    base = base_artifacts(tmp_path_factory.getbasetemp(), mnist_dir, worker)
    results = run_cases(cases, base, worker, tmp_path_factory.mktemp(name))
    seconds = time.monotonic() - started
    counts = tally(cases, results)
    summary = tmp_path_factory.getbasetemp() / f"attack-{name}-summary.json"
    record = {
        "outcomes": counts,
        "seconds": round(seconds, 1),
        "worker_starts": worker.starts,
        "worker_recycled": worker.recycled,
    }
    summary.write_text(json.dumps({**record, **details(results)}, indent=1))
    request.addfinalizer(
        lambda: report_line(
            request,
            f"\n{label}: {len(cases)} {noun} in {seconds:.0f} s: "
            + ", ".join(f"{kind} {count}" for kind, count in counts.items())
            + f" (details: {summary})",
        )
    )
    return results
