"""Reading checkpoints safely (weights-only unpickling) and finding a run's checkpoints."""

import inspect
import logging
import pickle
from pathlib import Path
from typing import Optional, Sequence

import torch

from mnistlab.errors import CheckpointError
from mnistlab.runs.run_dir import CHECKPOINTS, run_dir_of

log = logging.getLogger(__name__)


def refusal_reason(err: pickle.UnpicklingError) -> str:
    """torch's message is a page long; the line naming what the file tried to load is the news."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    named = [line for line in lines if "GLOBAL" in line or "Unsupported" in line]
    return (named or lines or ["unsupported content"])[0].rstrip(".")


def load_checkpoint(path, mmap: bool = False) -> dict:
    """torch.load with weights_only=True: a file that would run code when unpickled is refused."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path} refused: it is not a plain checkpoint of tensors and values "
            f"({refusal_reason(err)}). Nothing in it was run; load it only if you "
            f"trust where it came from"
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({first})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path} is not a Lightning checkpoint (no state_dict in it)")
    return checkpoint


def load_classifier(path, trusted_modules: Sequence[str] = ()):
    """The Classifier saved in a checkpoint, rebuilt from its own hyperparameters (its constructor's plain
    arguments: net, optimizer, ..., l2), in eval mode.

    What those name is checked against mnistlab.config.targets' allowlist and `trusted_modules` (the command
    line's: never the file's own) before anything is imported: a checkpoint is data."""
    from mnistlab.config.targets import check_targets
    from mnistlab.config.upgrade import upgrade_hparams
    from mnistlab.training.classifier import Classifier

    checkpoint = load_checkpoint(path)
    hparams = upgrade_hparams(checkpoint.get("hyper_parameters") or {})  # an older mnistlab's `model` entry
    if not isinstance(hparams.get("net"), dict) or not isinstance(hparams.get("optimizer"), dict):
        raise CheckpointError(f"{path} was not written by mnistlab's train.py (no network config in it)")
    accepted = set(inspect.signature(Classifier).parameters) - {"trusted_modules"}  # nor may it trust itself
    unexpected = sorted(str(key) for key in hparams if key not in accepted)
    if unexpected:
        raise CheckpointError(
            f"{path} refused: its hyper_parameters hold {unexpected[0]!r}, which a checkpoint "
            f"of mnistlab's train.py does not have"
        )
    check_targets(hparams, trusted_modules, source=f"{path}")  # names the file; Classifier checks again
    model = Classifier(**hparams, trusted_modules=trusted_modules)
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as err:
        raise CheckpointError(
            f"{path}: weights do not fit the saved model config ({str(err).splitlines()[0]})"
        ) from None
    return model.eval(), checkpoint


def checkpoint_files(run_dir: Path) -> list:
    return sorted((Path(run_dir) / CHECKPOINTS).glob("*.ckpt"))


def global_step(path: Path) -> Optional[int]:
    """A checkpoint's step, or None for a file being written or damaged (it is skipped)."""
    try:
        return int(load_checkpoint(path, mmap=True)["global_step"])
    except (CheckpointError, KeyError, TypeError):
        return None


def latest_checkpoint(run_dir: Path) -> Optional[Path]:
    """The readable checkpoint with the highest step (the newest file among equals): where to resume."""
    steps = {path: global_step(path) for path in checkpoint_files(run_dir)}
    readable = [path for path, step in steps.items() if step is not None]
    for path in set(steps) - set(readable):
        log.warning("skipping unreadable checkpoint %s", path)
    if not readable:
        return None
    return max(readable, key=lambda path: (steps[path], path.stat().st_mtime_ns))


def best_checkpoint(run_dir: Path) -> Optional[Path]:
    """The checkpoint train.py tested: ModelCheckpoint's best (by val/acc), else the latest."""
    latest = latest_checkpoint(run_dir)
    if latest is None:
        return None
    callbacks = load_checkpoint(latest, mmap=True).get("callbacks", {})
    for key, state in callbacks.items():
        keeps_newest = "'monitor': 'step'" in key or "'monitor': None" in key  # callbacks.recent and .last
        if key.startswith("ModelCheckpoint") and not keeps_newest and state.get("best_model_path"):
            best = Path(run_dir) / CHECKPOINTS / Path(state["best_model_path"]).name  # the run may have moved
            return best if best.is_file() else latest
    return latest


def resolve_checkpoint(path, pick=best_checkpoint) -> Path:
    """A checkpoint file as given, or `pick` (best or latest) of a run directory."""
    path = Path(path)
    if path.is_dir():
        run_dir = run_dir_of(path)
        found = pick(run_dir) if run_dir is not None else None
        if found is None:
            where = "no checkpoint in it yet" if run_dir is not None else "not a run directory of train.py"
            raise CheckpointError(f"{path}: {where}")
        return found
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file or run directory")
    return path
