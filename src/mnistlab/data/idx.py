"""Read IDX files (LeCun's MNIST format), gzipped or not, into uint8 tensors."""

import struct
from pathlib import Path

import torch

from mnistlab.data.unpack import unpack
from mnistlab.errors import DataError

UBYTE = 0x08


def read_idx(path: Path) -> torch.Tensor:
    raw = unpack(path)  # gunzipped and bounded in size
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != UBYTE or not 1 <= raw[3] <= 4 or len(raw) < 4 + 4 * raw[3]:
        raise DataError(f"{path} is not an unsigned-byte IDX file: delete it and download it again")
    ndim = raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    payload = memoryview(raw)[4 + 4 * ndim :]
    if len(payload) != torch.Size(shape).numel():
        raise DataError(f"{path} is truncated: header says {shape}, found {len(payload)} bytes")
    return torch.frombuffer(bytearray(payload), dtype=torch.uint8).reshape(shape)
