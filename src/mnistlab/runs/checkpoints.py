"""Reading checkpoints safely (weights-only unpickling) and finding a run's checkpoints."""

from pathlib import Path
from typing import Optional, Sequence

from mnistlab.errors import CheckpointError, ReceivedFileError
from mnistlab.received.checkpoint import CHECKPOINT_SUFFIX, checkpoint_in, counter, load_file, read_checkpoint
from mnistlab.received.files import is_plain_file
from mnistlab.runs.run_dir import CHECKPOINTS, run_dir_of


def load_checkpoint(path, mmap: bool = True) -> dict:
    """The file's contents, weights-only (mnistlab.received.checkpoint.load_file): for a first look only;
    what is built from a checkpoint comes from read_checkpoint's validated values."""
    return load_file(path, mmap=mmap)


def load_classifier(path, trusted_modules: Sequence[str] = (), max_parameters: Optional[int] = None):
    """The Classifier saved in a checkpoint, rebuilt from its validated hyperparameters, in eval mode; and the
    validated checkpoint (mnistlab.received.checkpoint). `trusted_modules`: the command line's, never the file's."""
    from mnistlab.training.classifier import Classifier  # start-up: Lightning loads when a model is rebuilt, not before

    received = read_checkpoint(path, trusted_modules, max_parameters)
    model = Classifier(**received.hparams, trusted_modules=trusted_modules)
    model.load_state_dict(received.state_dict)  # names, shapes and dtypes checked already
    return model.eval(), received


def checkpoint_files(run_dir: Path) -> list:
    """The run's checkpoints: regular .ckpt files directly in its checkpoints folder, not links."""
    folder = Path(run_dir) / CHECKPOINTS
    if folder.is_symlink() or not folder.is_dir():
        return []
    return sorted(path for path in folder.glob(f"*{CHECKPOINT_SUFFIX}") if is_plain_file(path))


def global_step(path: Path) -> Optional[int]:
    """A checkpoint's step, or None for a file being written or damaged (it is skipped)."""

    try:
        return counter(load_checkpoint(path), "global_step", path)
    except ReceivedFileError:
        return None


def latest_checkpoint(run_dir: Path) -> Optional[Path]:
    """The readable checkpoint with the highest step (the newest file among equals): where to resume."""
    steps = {path: global_step(path) for path in checkpoint_files(run_dir)}
    readable = [path for path, step in steps.items() if step is not None]
    if not readable:
        return None  # the caller says there is none (a refusal is one line)
    for path in sorted(set(steps) - set(readable)):  # a note, not an error: the run goes on (stdout)
        print(f"note: skipping unreadable checkpoint {path}", flush=True)
    return max(readable, key=lambda path: (steps[path], path.stat().st_mtime_ns))


def best_checkpoint(run_dir: Path) -> Optional[Path]:
    """The checkpoint train.py tested: ModelCheckpoint's best (by val/acc), else the latest."""
    latest = latest_checkpoint(run_dir)
    if latest is None:
        return None
    callbacks = load_checkpoint(latest).get("callbacks")
    for key, state in callbacks.items() if isinstance(callbacks, dict) else ():
        if not isinstance(key, str):
            continue
        keeps_newest = "'monitor': 'step'" in key or "'monitor': None" in key  # callbacks.recent and .last
        named = state.get("best_model_path") if isinstance(state, dict) else None
        if isinstance(key, str) and key.startswith("ModelCheckpoint") and not keeps_newest and isinstance(named, str):
            folder = Path(run_dir) / CHECKPOINTS
            best = folder / Path(named).name  # the run may have moved: its name, in this run's folder
            return best if checkpoint_in(str(best), folder) and is_plain_file(best) else latest
    return latest


def resolve_checkpoint(path, pick=best_checkpoint) -> Path:
    """A checkpoint file as given, or `pick` (best or latest) of a run directory."""
    path = Path(path)
    if path.is_dir():
        run_dir = run_dir_of(path)
        found = pick(run_dir) if run_dir is not None else None
        if found is None:
            unreadable = len(checkpoint_files(run_dir)) if run_dir is not None else 0
            where = (
                "not a run directory of train.py"
                if run_dir is None
                else f"no readable checkpoint in it ({unreadable} unreadable)"
                if unreadable
                else "no checkpoint in it yet"
            )
            raise CheckpointError(f"{path}: {where}")
        return found
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file or run directory")
    return path  # a file the command line names: whatever its name, read as data (read_checkpoint)
