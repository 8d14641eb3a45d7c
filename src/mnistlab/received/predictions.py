"""A run's test_predictions.csv (written with its report, mnistlab.runs.report): the true and the predicted class
of every test image, in the test set's order, for McNemar's test between two runs (python compare.py A B)."""

from typing import Tuple

import numpy as np

from mnistlab.errors import ReceivedFileError
from mnistlab.received.files import read_text
from mnistlab.settings.limits import MAX_CSV_BYTES

HEADER = "label,predicted"
MAX_CLASS = 999  # a class number; the MNIST family's are 0 to 9


def read_predictions(path) -> Tuple[np.ndarray, np.ndarray]:
    """(labels, predicted): two int64 arrays of one value per test image."""
    lines = read_text(path, MAX_CSV_BYTES).splitlines()
    if not lines or lines[0].strip() != HEADER:
        raise ReceivedFileError(f"{path}: not a predictions file of mnistlab (its first line is not {HEADER!r})")
    pairs = []
    for number, line in enumerate(lines[1:], start=2):
        cells = line.split(",")
        if len(cells) != 2 or not all(cell.isascii() and cell.isdigit() and len(cell) <= 3 for cell in cells):
            raise ReceivedFileError(f"{path}: line {number} is not two class numbers in [0, {MAX_CLASS}]")
        pairs.append((int(cells[0]), int(cells[1])))
    if not pairs:
        raise ReceivedFileError(f"{path}: holds no predictions")
    table = np.array(pairs, dtype=np.int64)
    return table[:, 0], table[:, 1]
