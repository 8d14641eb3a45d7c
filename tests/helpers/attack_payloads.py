"""Crafted files for tests/test_received_files.py and tests/test_fuzz_received.py: payloads that would create a
canary if they ran (pickles, TorchScript, importable modules), bombs (YAML aliases, PNG headers), and the edits
that put them into a fresh copy of a real run (checkpoints, YAML, JSON)."""

import json
import os
import struct
import zlib
from pathlib import Path
from typing import Callable, Tuple

import torch
import yaml

from helpers.attack import LAST, RECENT, TOP_K

# ---------------------------------------------------------------------------------------------------
# Code that runs when loaded


class RunsCommand:
    """Unpickling this calls os.system(command)."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class OpensFile:
    """Unpickling this calls builtins.open(path, "w"): creates the file."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


class WritesWhenLoaded(torch.nn.Module):
    """A TorchScript network that creates `<path>.load` when torch.jit.load reads it (its __setstate__ runs
    then) and `<path>.run` each time it runs: torch.from_file(..., shared=True) creates the file it maps."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self.weight = torch.nn.Parameter(torch.zeros(10, 784))

    def forward(self, x):
        mark = torch.from_file(self.path + ".run", True, 8, dtype=torch.uint8)
        mark.fill_(1)
        return x.flatten(1) @ self.weight.t() + mark[:1].float() * 0

    @torch.jit.export
    def __getstate__(self) -> Tuple[str, bool, torch.Tensor]:
        return (self.path, self.training, self.weight)

    @torch.jit.export
    def __setstate__(self, state: Tuple[str, bool, torch.Tensor]) -> None:
        self.path = state[0]
        self.training = state[1]
        mark = torch.from_file(self.path + ".load", True, 8, dtype=torch.uint8)
        mark.fill_(1)
        self.weight = state[2] + mark[:1].float() * 0


def save_torchscript(path: Path, canary: Path) -> Path:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(WritesWhenLoaded(str(canary))), str(path))
    return path


def bait_module(folder: Path, name: str, canary: Path) -> str:
    """A module in `folder` (on the case's sys.path) whose import creates the canary, with a network class."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(
        f"from pathlib import Path\nPath({str(canary)!r}).write_text('imported')\n"
        "from torch import nn\n\n\nclass Net(nn.Linear):\n    def __init__(self, **unused):\n"
        "        super().__init__(784, 10)\n"
    )
    return f"{name}.Net"


# ---------------------------------------------------------------------------------------------------
# Bombs and broken pictures


def png(width: int, height: int, color_type: int = 0, pixels: bytes = b"\x00") -> bytes:
    """A PNG declaring width x height, with `pixels` (already filtered rows) as its only IDAT data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(pixels)) + chunk(b"IEND", b"")


def large_png(side: int) -> bytes:
    """A valid gray side x side PNG (a bright block in the middle), small on disk."""
    row_dark, row_block = b"\x00" * (side + 1), b"\x00" + b"\x00" * (side // 3) + b"\xff" * (side // 3)
    row_block += b"\x00" * (side - 2 * (side // 3))
    rows = [row_block if side // 3 <= y < 2 * side // 3 else row_dark for y in range(side)]
    return png(side, side, 0, b"".join(rows))


def yaml_alias_bomb(top_key: str = "lol", levels: int = 9, width: int = 9) -> str:
    """Billion laughs: `levels` lists of `width` aliases of the one before, 9**9 strings once expanded."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]")
    lines.append(f"{top_key}: *a{levels - 1}")
    return "\n".join(lines) + "\n"


def alias_bomb_list(levels: int = 9, width: int = 9) -> str:
    """The same bomb as a YAML list at the top (overrides.yaml is a list)."""
    lines = ['- &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        lines.append(f"- &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------
# Edits of a run's files


def load_ckpt(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def edit_ckpt(path: Path, change: Callable[[dict], object]) -> None:
    """change(checkpoint) edits it in place, or returns what to save instead."""
    checkpoint = load_ckpt(path)
    replaced = change(checkpoint)
    torch.save(checkpoint if replaced is None else replaced, path)


def edit_run_ckpts(run: Path, change: Callable[[dict], object]) -> None:
    """Every checkpoint of the run (resume takes the newest, eval the best: both carry the edit)."""
    for path in sorted((run / "checkpoints").glob("*.ckpt")):
        edit_ckpt(path, change)


def callback_state(checkpoint: dict, which: str) -> dict:
    """The state of one of conf/callbacks/default.yaml's ModelCheckpoints (TOP_K, LAST, RECENT)."""
    assert which in (TOP_K, LAST, RECENT)
    [key] = [key for key in checkpoint["callbacks"] if key.startswith(which)]
    return checkpoint["callbacks"][key]


def set_callback(which: str, **state) -> Callable[[dict], None]:
    return lambda checkpoint: callback_state(checkpoint, which).update(state)


def set_hparams(**values) -> Callable[[dict], None]:
    return lambda checkpoint: checkpoint["hyper_parameters"].update(values)


def set_net(**values) -> Callable[[dict], None]:
    return lambda checkpoint: checkpoint["hyper_parameters"]["net"].update(values)


def edit_yaml(path: Path, change: Callable[[object], object]) -> None:
    data = yaml.safe_load(path.read_text())
    replaced = change(data)
    path.write_text(yaml.safe_dump(data if replaced is None else replaced, sort_keys=False))


def set_keys(data: dict, updates: dict) -> None:
    """updates {'a.b.c': value}: nested keys created as needed."""
    for dotted, value in updates.items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[leaf] = value


def edit_config(run: Path, updates: dict) -> None:
    """The run's .hydra/config.yaml with `updates` ({'dotted.key': value})."""
    edit_yaml(run / ".hydra" / "config.yaml", lambda data: set_keys(data, updates))


def edit_json(path: Path, change: Callable[[object], object]) -> None:
    data = json.loads(path.read_text())
    replaced = change(data)
    path.write_text(json.dumps(data if replaced is None else replaced))


def symlink(link: Path, target: Path) -> None:
    """`link` (replacing what is there) pointing to `target`, which need not exist."""
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.is_dir():
        import shutil

        shutil.rmtree(link)
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, link)
