"""A run directory as train.py leaves it: .hydra/config.yaml, checkpoints/, metrics.json.

Imports nothing heavy: train.py uses it to pick the run directory before Hydra starts.
"""

import atexit
import itertools
import os
import re
import shutil
from pathlib import Path
from typing import List, Optional

from omegaconf import OmegaConf

from mnistlab.errors import UserError
from mnistlab.runs.distributed import one_for_all_ranks

SAVED_CONFIG = Path(".hydra") / "config.yaml"
CHECKPOINTS = "checkpoints"
FINAL_METRICS = "metrics.json"  # written when a run has finished: its last checkpoint is in place


# What Hydra writes into a run folder before the task starts: a folder holding nothing else has no results
HYDRA_ONLY = {".hydra", "train.log"}
claimed: List[tuple] = []  # (folder, the parents made for it, deepest first), claimed by this process


def claim_new_dir(path: str) -> str:
    """`path`, else `path-1`, `path-2`, ...: the first that did not exist, created here. mkdir is atomic, so
    runs started in the same second (two shells, a script's loop, a job array) each get their own folder.
    A folder still holding only Hydra's files when the process ends (a run refused before training) is removed,
    with the parents made for it (discard_unused)."""
    parent = Path(path).parent
    made = [folder for folder in (parent, *parent.parents) if not folder.exists()]
    parent.mkdir(parents=True, exist_ok=True)
    for n in itertools.count():
        candidate = path if n == 0 else f"{path}-{n}"
        try:
            os.mkdir(candidate)
        except FileExistsError:
            continue
        if not claimed:
            atexit.register(discard_unused)
        claimed.append((Path(candidate), made))
        return candidate


def discard_unused() -> None:
    """At exit: remove each claimed folder that holds nothing but Hydra's files (.hydra/, train.log), and the
    parents made for it that are left empty. A run that started training has written more (env.json, logs,
    checkpoints); a sweep's folder holds its jobs."""
    while claimed:
        folder, made = claimed.pop()
        try:
            if not folder.is_dir() or not {entry.name for entry in folder.iterdir()} <= HYDRA_ONLY:
                continue
            shutil.rmtree(folder)
            for empty in made:
                empty.rmdir()
        except OSError:  # not empty (another run's folder), gone already, not ours to remove
            continue


def register_resolvers() -> None:
    """`${new_dir:...}` in conf/hydra/default.yaml. Cached like Hydra's `now`: Hydra copies the cache into every
    sweep job's config (in launcher processes too), so a run or sweep claims its folder once."""
    if not OmegaConf.has_resolver("new_dir"):
        OmegaConf.register_new_resolver("new_dir", one_for_all_ranks(claim_new_dir), use_cache=True)  # torchrun, srun


def is_run_dir(path: Path) -> bool:
    return (path / SAVED_CONFIG).is_file()


def run_dir_of(path) -> Optional[Path]:
    """The run a path belongs to: the directory itself, or <run>/checkpoints/<file>; None if neither."""
    path = Path(path)
    for candidate in (path, path.parent.parent):
        if is_run_dir(candidate):
            return candidate
    return None


def saved_config(run_dir: Path, trusted_modules=(), paths: Optional[dict] = None, for_training=False, overrides=None):
    """A run's config as train.py saved it, read at the boundary (mnistlab.received.run_config): parsed as data,
    resolved once, checked; an older mnistlab's in today's shape. A plain dict."""
    from mnistlab.received.run_config import read_run_config

    return read_run_config(Path(run_dir), paths, trusted_modules, for_training, overrides)


def data_config(run_dir: Optional[Path], trusted_modules=(), saved: Optional[dict] = None, **overrides) -> dict:
    """The data config a run was trained with (its `_target_` checked: the file is data), or conf/data/mnist.yaml's
    defaults for a checkpoint without its run; resolved, with `overrides` of the arguments that it has. `saved`:
    the run's config if read already (saved_config)."""
    from mnistlab.config.train import DataConfig

    if run_dir is None:
        data = OmegaConf.to_container(OmegaConf.structured(DataConfig))
    else:
        data = (saved if saved is not None else saved_config(run_dir, trusted_modules))["data"]
    return {**data, **{key: value for key, value in overrides.items() if key in data}}


def argument(argv: List[str], key: str) -> Optional[str]:
    """The value of a `key=value` command-line override, if given (Hydra's quotes removed)."""
    values = [arg.split("=", 1)[1] for arg in argv if arg.startswith(f"{key}=")]
    if not values:
        return None
    value = values[-1]
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1].replace(f"\\{value[0]}", value[0]).replace("\\\\", "\\")
    return value


def quoted(value: str) -> str:
    """A Hydra override value that keeps any path intact (spaces, '=', quotes, backslashes). Hydra resolves `${...}`
    even in quotes: such a path is refused, never handed on to be read as an interpolation."""
    if "${" in value:
        raise UserError(f"{value}: Hydra would read '${{...}}' in this path as an interpolation; rename it")
    # Hydra takes backslashes literally, except a run of them before a quote or the closing quote: those doubled
    escaped = re.sub(r"(\\+)(?='|$)", lambda run: run.group(1) * 2, value)
    return "'" + escaped.replace("'", "\\'") + "'"


def unfinished_run(argv: List[str]) -> Optional[Path]:
    """`resume=auto`: the newest run started with this command line's overrides that has not finished (no
    metrics.json) and has a readable checkpoint: in `hydra.run.dir` if given, else in outputs/<date>/<time>."""
    from mnistlab.config.overrides import job_key
    from mnistlab.errors import ReceivedFileError
    from mnistlab.runs.checkpoints import latest_checkpoint  # torch: only for resume=auto
    from mnistlab.runs.resume import original_overrides

    wanted = job_key([arg for arg in argv if "=" in arg and not arg.startswith("-")])
    given = argument(argv, "hydra.run.dir")
    found = [Path(given)] if given else [path.parents[1] for path in Path("outputs").glob(f"*/*/{SAVED_CONFIG}")]
    runs = [
        run
        for run in found
        if is_run_dir(run) and not run.is_symlink() and not (run / FINAL_METRICS).exists() and "${" not in str(run)
    ]
    for run in sorted(runs, key=lambda run: run.stat().st_mtime, reverse=True):
        try:
            if original_overrides(run) == wanted and latest_checkpoint(run) is not None:
                return run
        except ReceivedFileError:  # not a run of ours to continue
            continue
    return None


def resolve_auto(argv: List[str]) -> List[str]:
    """`resume=auto`: `resume=<that run>` when there is one to continue, else a new run; said on the console."""
    if argument(argv, "resume") != "auto":
        return argv
    rest = [arg for arg in argv if not arg.startswith("resume=")]
    if "-m" in argv or "--multirun" in argv:
        print("resume=auto: a sweep continues in its own folder (hydra.sweep.dir=<that folder>)", flush=True)
        return rest + ["resume=null"]
    run = unfinished_run(rest)
    if run is None:
        print("resume=auto: no unfinished run of this configuration with a checkpoint: starting a new run", flush=True)
        return rest + ["resume=null"]
    print(f"resume=auto: continuing the unfinished run {run}", flush=True)
    return rest + [f"resume={quoted(str(run))}"]


def continue_in_run_dir(argv: List[str]) -> List[str]:
    """`resume=<run dir>` or `ckpt_path=<run dir>/checkpoints/<file>`: make Hydra run in that
    directory again, without overwriting its saved config (train() loads that config instead)."""
    argv = resolve_auto(argv)
    resume, ckpt_path = argument(argv, "resume"), argument(argv, "ckpt_path")
    if resume in (None, "null") and ckpt_path in (None, "null"):
        return argv
    if resume not in (None, "null"):
        if not is_run_dir(Path(resume)):
            raise UserError(f"resume={resume} is not a run directory of train.py (no {SAVED_CONFIG} in it)")
        run_dir = Path(resume)
    else:
        run_dir = run_dir_of(ckpt_path) if Path(ckpt_path).is_file() else None
        if run_dir is None:  # a checkpoint from elsewhere: a new run, from this command line's config
            return argv
    if "-m" in argv or "--multirun" in argv:
        raise UserError("resume= and ckpt_path= continue one run: they do not combine with -m (multirun)")
    return argv + [f"hydra.run.dir={quoted(str(run_dir.resolve()))}", "hydra.output_subdir=null"]
