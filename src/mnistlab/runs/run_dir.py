"""A run directory as train.py leaves it: .hydra/config.yaml, checkpoints/, metrics.json.

Imports nothing heavy: train.py uses it to pick the run directory before Hydra starts.
"""

import atexit
import itertools
import os
import shutil
from pathlib import Path
from typing import List, Optional

from omegaconf import OmegaConf

from mnistlab.received.run_config import read_run_config
from mnistlab.runs.distributed import launched, one_for_all_ranks
from mnistlab.settings.schema import DataConfig

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
        discard_at_exit_if_unused(Path(candidate), made)
        return candidate


def claim_named_dir(argv: List[str]) -> None:
    """A run folder named on the command line (`hydra.run.dir=<path>`) that does not exist yet is Hydra's to
    create, and is removed at exit as a claimed one is when the run is refused before training. Not for sweeps
    (their folder holds jobs) nor for processes of a torchrun or srun run (rank 0's folder)."""
    if "-m" in argv or "--multirun" in argv or launched() is not None:
        return
    named = [arg.split("=", 1)[1] for arg in argv[1:] if arg.startswith("hydra.run.dir=")]
    if not named or not named[-1] or "${" in named[-1]:
        return
    folder = Path(os.path.abspath(named[-1]))  # "a/.." is the folder it names; relative to where the run starts
    if folder.exists():
        return
    discard_at_exit_if_unused(folder, [parent for parent in folder.parents if not parent.exists()])


def discard_at_exit_if_unused(folder: Path, made: List[Path]) -> None:
    """Claim `folder` (and `made`, the parents made for it, deepest first) for discard_unused at exit."""
    if not claimed:
        atexit.register(discard_unused)
    claimed.append((folder, made))


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
    return read_run_config(Path(run_dir), paths, trusted_modules, for_training, overrides)


def data_config(run_dir: Optional[Path], trusted_modules=(), saved: Optional[dict] = None, **overrides) -> dict:
    """The data config a run was trained with (its `_target_` checked: the file is data), or conf/data/mnist.yaml's
    defaults for a checkpoint without its run; resolved, with `overrides` of the arguments that it has. `saved`:
    the run's config if read already (saved_config)."""
    if run_dir is None:
        data = OmegaConf.to_container(OmegaConf.structured(DataConfig))
    else:
        data = (saved if saved is not None else saved_config(run_dir, trusted_modules))["data"]
    return {**data, **{key: value for key, value in overrides.items() if key in data}}
