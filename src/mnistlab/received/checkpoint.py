"""A checkpoint file as validated values: its hyperparameters by the command line's typed schema, the size of
the network they describe counted before any weight exists, the weights' names, shapes and dtypes checked
against that network, the step counters as integers, and for Lightning's restore only state that names no
path outside the run (docs/security.md)."""

import math
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

from mnistlab.errors import CheckpointError, ReceivedFileError
from mnistlab.received.schemas import check_size, typed_hparams
from mnistlab.settings.limits import DEFAULT_MAX_PARAMETERS
from mnistlab.settings.targets import check_targets
from mnistlab.settings.upgrade import upgrade_hparams

CHECKPOINT_SUFFIX = ".ckpt"
MAX_COUNTER = 2**53  # steps and epochs: exact as floats too
MAX_LEGACY_BYTES = 256 << 20  # a checkpoint in torch's pre-zip format is read whole: not a larger one
MAX_STATE_TENSORS = 100_000  # tensors besides the weights (optimizer state, resume state)


@dataclass
class ReceivedCheckpoint:
    path: Path
    hparams: dict  # the Classifier's arguments, typed and checked
    state_dict: dict  # name -> tensor, memory-mapped from the file
    global_step: int
    epoch: int
    rest: dict = field(default_factory=dict)  # what else Lightning restores on resume (loops, optimizers, ...)


def is_torchscript(path: Path) -> bool:
    """TorchScript archives hold compiled code (a program); Lightning checkpoints only pickled data."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any("/code/" in name or name.endswith("constants.pkl") for name in archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def refusal_reason(err: pickle.UnpicklingError) -> str:
    """torch's message is a page long; the line naming what the file tried to load is the news."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    named = [line for line in lines if "GLOBAL" in line or "Unsupported" in line]
    return (named or lines or ["unsupported content"])[0].rstrip(".")[:200]


def load_file(path, mmap: bool = True) -> dict:
    """torch.load with weights_only=True (a file that would run code when unpickled is refused), memory-mapped
    so that its tensors take no memory until read; only a dict with a state_dict passes."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    with open(path, "rb") as file:
        magic = file.read(4)
    if magic != b"PK\x03\x04" and not magic.startswith(b"\x80"):  # torch's zip format, or its legacy pickle
        raise CheckpointError(f"{path} is not a PyTorch checkpoint (neither a zip archive nor a pickle)")
    if is_torchscript(path):
        raise CheckpointError(
            f"{path} is a TorchScript program, not a checkpoint: it is not loaded (a program can read and write "
            f"files; predict.py runs one only with torchscript=true)"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path} refused: it is not a plain checkpoint of tensors and values "
            f"({refusal_reason(err)}). Nothing in it was run; load it only if you "
            f"trust where it came from"
        ) from None
    except MemoryError:
        raise CheckpointError(f"{path}: reading it would take more memory than there is") from None
    except Exception as err:  # a damaged, truncated or foreign file: torch raises many kinds
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        if not mmap or zipfile.is_zipfile(path) or path.stat().st_size > MAX_LEGACY_BYTES:
            # a zip checkpoint that cannot be memory-mapped is damaged (or compressed: read whole, a few MB could
            # expand to gigabytes); only files of torch's small legacy format are read into memory
            raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({first})") from None
        return load_file(path, mmap=False)
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise CheckpointError(f"{path} is not a Lightning checkpoint (no state_dict in it)")
    return checkpoint


def counter(checkpoint: dict, key: str, path) -> int:
    value = checkpoint.get(key, 0)
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_COUNTER:
        raise CheckpointError(f"{path}: {key} must be a non-negative integer, found {str(value)[:40]!r}")
    return value


def check_weights(state_dict: dict, expected: dict, path) -> None:
    """Names, shapes and dtypes as the network the hyperparameters describe has them."""
    import torch

    for name, value in state_dict.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: state_dict entry {str(name)[:60]!r} is not a named tensor")
    missing, unexpected = sorted(set(expected) - set(state_dict)), sorted(set(state_dict) - set(expected))
    if missing or unexpected:
        first = f"no {missing[0]}" if missing else f"an unexpected {unexpected[0][:60]}"
        raise CheckpointError(f"{path}: weights do not fit the saved model config ({first})")
    for name, (shape, dtype) in expected.items():
        value = state_dict[name]
        if tuple(value.shape) != shape or value.dtype != dtype:
            raise CheckpointError(
                f"{path}: weights do not fit the saved model config ({name} is {tuple(value.shape)} {value.dtype}, "
                f"the network's {shape} {dtype})"
            )


def expected_weights(hparams: dict, trusted_modules: Iterable[str]) -> dict:
    """name -> (shape, dtype) of the Classifier these hyperparameters build, built on the meta device."""
    import torch

    from mnistlab.training.classifier import Classifier  # start-up: Lightning loads when a checkpoint is read

    with torch.device("meta"):
        model = Classifier(**hparams, trusted_modules=trusted_modules)
    return {name: (tuple(value.shape), value.dtype) for name, value in model.state_dict().items()}


def read_checkpoint(
    path, trusted_modules: Iterable[str] = (), max_parameters: Optional[int] = None
) -> ReceivedCheckpoint:
    """The checkpoint at `path`, validated (see the module's docstring). Raises CheckpointError in one line."""

    path = Path(path)
    checkpoint = load_file(path)
    trusted_modules = tuple(trusted_modules)
    try:
        hparams = upgrade_hparams(checkpoint.get("hyper_parameters") or {})
        if isinstance(hparams, dict):  # what it names to build, first: the refusal names the entry
            check_targets(
                {key: hparams[key] for key in ("net", "optimizer", "scheduler") if key in hparams},
                trusted_modules,
                source=str(path),
            )
        hparams = typed_hparams(hparams, path)
        check_size(hparams["net"], path, max_parameters or DEFAULT_MAX_PARAMETERS, trusted_modules)
        check_weights(checkpoint["state_dict"], expected_weights(hparams, trusted_modules), path)
        rest = {key: value for key, value in checkpoint.items() if key not in ("state_dict", "hyper_parameters")}
        check_training_state(rest, path)
        largest = max((value.numel() for value in checkpoint["state_dict"].values()), default=0)
        check_tensor_sizes(rest, largest, path)
        received = ReceivedCheckpoint(
            path=path,
            hparams=hparams,
            state_dict=checkpoint["state_dict"],
            global_step=counter(checkpoint, "global_step", path),
            epoch=counter(checkpoint, "epoch", path),
            rest=rest,
        )
    except ReceivedFileError:
        raise
    except Exception as err:  # a check met a value of a type it did not foresee: still this file's fault
        raise CheckpointError(f"{path}: malformed ({type(err).__name__}: {str(err)[:160]})") from None
    return received


def check_counters(node, path, where: str, depth: int = 0) -> None:
    """The loops' saved progress: dicts (and lists) of counters, whole numbers >= 0, and flags, nothing else."""
    if depth > 12:
        raise CheckpointError(f"{path}: {where} is nested too deeply")
    if isinstance(node, dict):
        for key, value in node.items():
            if not isinstance(key, str):
                raise CheckpointError(f"{path}: {where} has a key that is not a name")
            check_counters(value, path, f"{where}.{key}", depth + 1)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            check_counters(value, path, f"{where}[{index}]", depth + 1)
    elif not (isinstance(node, bool) or (isinstance(node, int) and 0 <= node < MAX_COUNTER)):
        raise CheckpointError(f"{path}: {where} must hold step counters, found {str(node)[:40]!r}")


def plain_value(value, depth: int = 0) -> bool:
    """None, a flag, a string, a finite number, or lists and dicts of them (a few levels deep)."""
    if value is None or isinstance(value, (bool, str)):
        return True
    if isinstance(value, (int, float)):
        return math.isfinite(value)
    if depth < 3 and isinstance(value, list):
        return all(plain_value(item, depth + 1) for item in value)
    if depth < 3 and isinstance(value, dict):
        return all(isinstance(key, str) and plain_value(item, depth + 1) for key, item in value.items())
    return False


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_scheduler_state(state, path, where: str) -> None:
    """A learning-rate scheduler's saved state: plain values; its learning rates numbers, its counters whole."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: {where} must be a mapping")
    for key, value in state.items():
        numbers = key in ("base_lrs", "_last_lr") and not (isinstance(value, list) and all(map(is_number, value)))
        counter = key in ("last_epoch", "_step_count") and (isinstance(value, bool) or not isinstance(value, int))
        if not plain_value(value) or numbers or counter:
            raise CheckpointError(f"{path}: {where}.{key} holds {str(value)[:40]!r}")


def tensors_in(node, depth: int = 0):
    import torch

    if depth > 16:
        return
    if isinstance(node, torch.Tensor):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from tensors_in(value, depth + 1)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from tensors_in(value, depth + 1)


def check_tensor_sizes(rest: dict, largest: int, path) -> None:
    """No tensor of the training state larger than the network's largest weight or a batch of logits: a saved
    tensor can be a view that claims billions of elements over a storage of one, which copying would allocate."""
    bound = max(largest, 1 << 20)
    for count, tensor in enumerate(tensors_in(rest)):
        if count > MAX_STATE_TENSORS or tensor.numel() > bound:
            raise CheckpointError(
                f"{path}: its training state holds a tensor of {tensor.numel():,} elements (at most {bound:,})"
            )


def check_train_totals(totals, path) -> None:
    """The Classifier's running sums of a checkpoint taken in mid-epoch (training.classifier.on_save_checkpoint)."""
    import torch

    if totals is None:
        return
    if not isinstance(totals, dict):
        raise CheckpointError(f"{path}: train_totals must be a mapping")
    for key in ("epoch", "seen"):
        value = totals.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_COUNTER:
            raise CheckpointError(f"{path}: train_totals.{key} must be a whole number, found {str(value)[:40]!r}")
    for key in ("loss", "correct"):
        if not isinstance(totals.get(key), torch.Tensor) or totals[key].numel() != 1:
            raise CheckpointError(f"{path}: train_totals.{key} must be a number as a tensor")
    steps = totals.get("unsummed", [])
    if not isinstance(steps, list) or len(steps) > 1024:
        raise CheckpointError(f"{path}: train_totals.unsummed must be a list of the steps not yet summed")
    for step in steps:
        if not isinstance(step, (list, tuple)) or len(step) != 3 or not all(isinstance(t, torch.Tensor) for t in step):
            raise CheckpointError(f"{path}: train_totals.unsummed holds something other than (loss, logits, labels)")


def check_pruning_state(callbacks, path) -> None:
    """The Optuna pruning callback's count of the validations it reported (mnistlab.sweeps.pruning)."""
    state = callbacks.get("OptunaPruning") if isinstance(callbacks, dict) else None
    if state is None:
        return
    count = state.get("validations") if isinstance(state, dict) else None
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count < MAX_COUNTER or len(state) != 1:
        raise CheckpointError(f"{path}: callbacks.OptunaPruning must be {{'validations': <count>}}")


def check_training_state(rest: dict, path) -> None:
    """What Lightning restores besides the weights: checked here, before any training starts, so that a bad
    value is one line rather than an exception deep inside Lightning or torch."""
    import torch

    check_train_totals(rest.get("train_totals"), path)
    check_pruning_state(rest.get("callbacks"), path)
    if "loops" in rest:
        check_counters(rest["loops"], path, "loops")
    schedulers = rest.get("lr_schedulers", [])
    if not isinstance(schedulers, list):
        raise CheckpointError(f"{path}: lr_schedulers must be a list")
    for index, state in enumerate(schedulers):
        check_scheduler_state(state, path, f"lr_schedulers[{index}]")
    optimizers = rest.get("optimizer_states", [])
    if not isinstance(optimizers, list):
        raise CheckpointError(f"{path}: optimizer_states must be a list")
    for index, state in enumerate(optimizers):
        groups = state.get("param_groups") if isinstance(state, dict) else None
        per_parameter = state.get("state") if isinstance(state, dict) else None
        if not isinstance(groups, list) or not all(isinstance(group, dict) for group in groups):
            raise CheckpointError(f"{path}: optimizer_states[{index}] has no list of param_groups")
        if not isinstance(per_parameter, dict) or not all(isinstance(value, dict) for value in per_parameter.values()):
            raise CheckpointError(f"{path}: optimizer_states[{index}].state must map parameters to their state")
        for value in per_parameter.values():
            for item in value.values():
                if not (item is None or isinstance(item, (torch.Tensor, int, float, bool))):
                    raise CheckpointError(f"{path}: optimizer_states[{index}] holds {type(item).__name__} values")


def finite_score(value):
    """A ModelCheckpoint score: a finite number (as a 0-d tensor, as Lightning keeps it), else None."""
    import torch

    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return torch.tensor(float(value))


def checkpoint_in(path, folder: Path) -> Optional[str]:
    """`path` as a string if it is a plain path of a .ckpt file directly in `folder` (no scheme, no link), else None."""
    if not isinstance(path, str) or not path or "://" in path or "\x00" in path or not path.endswith(CHECKPOINT_SUFFIX):
        return None
    candidate = Path(path)
    if os.path.realpath(candidate.parent) != os.path.realpath(folder) or candidate.is_symlink():
        return None
    return path


def model_checkpoint_state(state, checkpoints: Path) -> Optional[dict]:
    """A ModelCheckpoint's saved state, kept only where every path in it is a checkpoint of `checkpoints`. Saved
    in a folder since renamed (a continued Optuna trial's run moves to the new trial's folder), the files it names
    directly in its old folder are taken by name from `checkpoints`; nothing else."""
    dirpath = state.get("dirpath") if isinstance(state, dict) else None
    if not isinstance(dirpath, str) or "\x00" in dirpath or "://" in dirpath:
        return None
    here = os.path.realpath(checkpoints)
    moved = os.path.realpath(dirpath) != here

    def own(path) -> Optional[str]:
        if moved:
            if not isinstance(path, str) or os.path.dirname(os.path.normpath(path)) != os.path.normpath(dirpath):
                return None
            path = os.path.join(here, os.path.basename(os.path.normpath(path)))
        return checkpoint_in(path, checkpoints)

    best_k = state.get("best_k_models")
    best_k = best_k if isinstance(best_k, dict) else {}
    kept = {own(path): finite_score(score) for path, score in best_k.items()}
    return {
        "monitor": state.get("monitor") if isinstance(state.get("monitor"), str) else None,
        "best_model_score": finite_score(state.get("best_model_score")),
        "best_model_path": own(state.get("best_model_path")) or "",
        "current_score": finite_score(state.get("current_score")),
        "dirpath": here if moved else state["dirpath"],
        "best_k_models": {path: score for path, score in kept.items() if path is not None and score is not None},
        "kth_best_model_path": own(state.get("kth_best_model_path")) or "",
        "kth_value": finite_score(state.get("kth_value")),
        "last_model_path": own(state.get("last_model_path")) or "",
    }


def lightning_state(received: ReceivedCheckpoint, own_run_dir: Optional[Path]) -> dict:
    """What Lightning's fit restores from: the validated weights and hyperparameters, and the rest with its
    callback state sanitised. own_run_dir: resuming that run (its checkpoints folder); None for a checkpoint
    from elsewhere starting a new run, which restores no callback state at all."""
    state = {**received.rest, "state_dict": received.state_dict, "hyper_parameters": received.hparams}
    state["global_step"], state["epoch"] = received.global_step, received.epoch
    callbacks = received.rest.get("callbacks")
    kept = {}
    if own_run_dir is not None and isinstance(callbacks, dict):
        checkpoints = Path(own_run_dir) / "checkpoints"
        for key, value in callbacks.items():
            if not isinstance(key, str):
                continue
            if key.startswith("ModelCheckpoint"):
                value = model_checkpoint_state(value, checkpoints)
                if value is None:
                    continue
            kept[key] = value
    state["callbacks"] = kept
    return state
