"""A received picture as gray levels: its declared size checked before its pixels are decoded (a few bytes of
PNG can declare 30000 x 30000 pixels), every decoding failure one ImageError for that picture alone."""

import signal
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from mnistlab.errors import ImageError, ReceivedFileError
from mnistlab.received.files import read_bytes
from mnistlab.settings.limits import MAX_DECODE_SECONDS, MAX_IMAGE_PIXELS

MAX_IMAGE_BYTES = 64 << 20


class DecodeTooLong(Exception):
    pass


@contextmanager
def cpu_time_limit(seconds: float):
    """Raise DecodeTooLong after `seconds` of this process's CPU time (SIGVTALRM; the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise DecodeTooLong

    previous = signal.signal(signal.SIGVTALRM, expire)
    signal.setitimer(signal.ITIMER_VIRTUAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        signal.signal(signal.SIGVTALRM, previous)


def read_gray(path: Path) -> np.ndarray:
    """The picture as float gray levels in [0, 1]; transparency is laid on white (drawn digits)."""
    import io

    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        data = read_bytes(path, MAX_IMAGE_BYTES, follow_link=True)
    except ReceivedFileError as err:
        raise ImageError(str(err)) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with cpu_time_limit(MAX_DECODE_SECONDS), Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise ImageError(
                        f"{path}: {width} x {height} pixels, over the {MAX_IMAGE_PIXELS:,} a picture may have"
                    )
                image = ImageOps.exif_transpose(image)  # photos taken sideways
                if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                    background = Image.new("RGBA", image.size, "white")
                    image = Image.alpha_composite(background, image.convert("RGBA"))
                gray = np.asarray(image.convert("L"), dtype=np.float32) / 255
    except ImageError:
        raise
    except DecodeTooLong:
        raise ImageError(f"{path}: decoding took over {MAX_DECODE_SECONDS} s of CPU time; not read") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image (PNG, JPG, ... expected)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{path}: declares more pixels than a picture may have (a decompression bomb)") from None
    except MemoryError:
        raise ImageError(f"{path}: decoding it would take more memory than there is") from None
    except Exception as err:  # Pillow's decoders raise many kinds for damaged files
        reason = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
        raise ImageError(f"{path}: unreadable image ({reason})") from None
    if gray.ndim != 2 or min(gray.shape) == 0:
        raise ImageError(f"{path}: not a two-dimensional picture")
    return gray
