"""The task behind predict.py: the digit in each picture, from a checkpoint or an exported model."""

import glob
import sys
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
from omegaconf import DictConfig, ListConfig

from mnistlab.data.pictures import to_mnist
from mnistlab.errors import CheckpointError, ImageError, UserError
from mnistlab.received.checkpoint import is_torchscript
from mnistlab.received.image import read_gray
from mnistlab.received.onnx_model import read_onnx
from mnistlab.runs.checkpoints import load_classifier, resolve_checkpoint
from mnistlab.settings.schema import validate


def load_model(path, trusted_modules=(), max_parameters=None, torchscript: bool = False):
    """A function from float32 images (N, 1, 28, 28) in [0, 1] to logits, for a checkpoint (file or run
    directory), an ONNX file, or, only with torchscript=True, a TorchScript file (a program, not data)."""
    import torch

    named_by_a_run = Path(path).is_dir()
    path = resolve_checkpoint(path)
    if path.suffix == ".onnx":
        return read_onnx(path)
    if is_torchscript(path):
        if named_by_a_run:  # never a program a run folder picks, even with torchscript=true
            raise CheckpointError(f"{path} is a TorchScript program in a run folder's checkpoints: not run")
        if not torchscript:
            raise CheckpointError(
                f"{path} is a TorchScript program, which can read and write files when run: not run. "
                f"If you trust where it came from, add torchscript=true; to share a model, export it as ONNX"
            )
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TorchScript is deprecated in torch >= 2.10, still loads
            net = torch.jit.load(str(path), map_location="cpu")
    else:
        net = load_classifier(path, trusted_modules, max_parameters)[0].inference_net
    net.eval()

    def run(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(torch.from_numpy(images)).numpy()

    return run


def expand(patterns) -> Tuple[List[Path], List[str]]:
    """Files named or matched by each pattern, in order, and a message for each that names nothing."""
    patterns = list(patterns) if isinstance(patterns, (list, ListConfig)) else [patterns]
    files, problems = [], []
    for pattern in map(str, patterns):
        matched = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else [pattern]
        matched = [Path(name) for name in matched]
        if not matched:
            problems.append(f"{pattern}: no file matches")
        for path in matched:
            if path.is_dir():
                problems.append(f"{path}: a directory (use a glob such as {path}/*.png)")
            elif not path.exists():
                problems.append(f"{path}: no such file")
            else:
                files.append(path)
    return files, problems


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def load_digit(path: Path, invert: Optional[bool] = None) -> np.ndarray:
    """A received picture as the network saw digits in training (mnistlab.data.pictures)."""
    return to_mnist(read_gray(path), invert, str(path))


def predict(cfg: DictConfig) -> list:
    """predict.py: print `<file>: <digit> (<probability>)` for each picture; bad files are reported
    on stderr and the others still predicted (exit code 2 if any was bad)."""
    validate(cfg)

    if cfg.threads is not None:
        import torch

        torch.set_num_threads(cfg.threads)
    files, problems = expand(cfg.images)
    model = load_model(cfg.ckpt_path, cfg.trusted_modules, cfg.max_parameters, cfg.torchscript)
    digits, readable = [], []
    for path in files:
        try:
            digits.append(load_digit(path, cfg.invert))
            readable.append(path)
        except ImageError as err:
            problems.append(str(err))
    results = []
    if digits:
        probabilities = softmax(model(np.stack(digits)[:, None].astype(np.float32)))
        for path, row in zip(readable, probabilities):
            top = np.argsort(-row)[: cfg.top_k]
            results.append(
                {"file": str(path), "digit": int(top[0]), "top": [(int(digit), float(row[digit])) for digit in top]}
            )
            print(f"{path}: " + "  ".join(f"{digit} ({row[digit]:.1%})" for digit in top), flush=True)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        raise SystemExit(2)
    if not results:
        raise UserError("no images given: images=<file, glob or [list]>")
    return results
