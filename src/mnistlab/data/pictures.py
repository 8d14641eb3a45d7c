"""Any digit picture -> a 28x28 MNIST-style image: white digit on black, in a 20x20 box, centred.

MNIST's own recipe (LeCun et al.): the digit is scaled, keeping its aspect ratio, to fit a 20x20
box, then placed in the 28x28 field so that its centre of mass is the centre. Pictures of any
size, grayscale or colour, and dark digits on a light background (inverted first) all come out
as the network saw in training.
"""

from typing import Optional

import numpy as np

from mnistlab.errors import ImageError

SIDE, BOX = 28, 20
INK = 0.05  # of the brightest pixel: what counts as the digit when finding its bounding box


def border(gray: np.ndarray) -> np.ndarray:
    return np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])


def to_mnist(gray: np.ndarray, invert: Optional[bool] = None, name: str = "image") -> np.ndarray:
    """28x28 float32 in [0, 1]. invert=None: invert when the border (the background) is light."""
    from PIL import Image

    if invert is None:
        invert = float(np.median(border(gray))) > 0.5
    if invert:
        gray = 1.0 - gray
    gray = np.clip(gray - float(np.median(border(gray))), 0, None)  # background to black
    if gray.max() <= 0.05:
        raise ImageError(f"{name}: no digit found (a blank picture, or the wrong invert= setting)")
    gray = gray / gray.max()
    rows, cols = np.nonzero(gray > INK)
    digit = gray[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    scale = BOX / max(digit.shape)
    height, width = (max(1, round(side * scale)) for side in digit.shape)
    digit = np.asarray(Image.fromarray(digit).resize((width, height), Image.Resampling.LANCZOS))
    digit = np.clip(digit, 0, 1)
    field = np.zeros((SIDE, SIDE), dtype=np.float32)
    top, left = (SIDE - height) // 2, (SIDE - width) // 2
    field[top : top + height, left : left + width] = digit
    total = field.sum()
    centre_row = (field.sum(axis=1) * np.arange(SIDE)).sum() / total
    centre_col = (field.sum(axis=0) * np.arange(SIDE)).sum() / total
    shift_row, shift_col = round(SIDE / 2 - centre_row), round(SIDE / 2 - centre_col)  # MNIST: (14, 14)
    # move the centre of mass to the middle, never pushing the digit out of the field
    shift_row = int(np.clip(shift_row, -top, SIDE - top - height))
    shift_col = int(np.clip(shift_col, -left, SIDE - left - width))
    return np.roll(field, (shift_row, shift_col), axis=(0, 1))
