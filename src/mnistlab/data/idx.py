"""Read IDX files (LeCun's MNIST format), gzipped or not, into uint8 tensors."""

import gzip
import struct
import zlib
from pathlib import Path

import torch

from mnistlab.errors import DataError

UBYTE = 0x08


MAX_BYTES = 256 << 20  # unpacked: MNIST's largest file is 47 MB, a few MB of gzip could unpack to gigabytes


def read_idx(path: Path) -> torch.Tensor:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path} is unreadable or corrupt ({err}): delete it and download it again") from None
    if len(raw) > MAX_BYTES:
        raise DataError(f"{path} unpacks to over {MAX_BYTES >> 20} MB: not a data set this program reads")
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != UBYTE or not 1 <= raw[3] <= 4 or len(raw) < 4 + 4 * raw[3]:
        raise DataError(f"{path} is not an unsigned-byte IDX file: delete it and download it again")
    ndim = raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    payload = memoryview(raw)[4 + 4 * ndim :]
    if len(payload) != torch.Size(shape).numel():
        raise DataError(f"{path} is truncated: header says {shape}, found {len(payload)} bytes")
    return torch.frombuffer(bytearray(payload), dtype=torch.uint8).reshape(shape)
