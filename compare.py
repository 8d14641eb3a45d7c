"""Compare runs: python compare.py <run or sweep dir> ... [--out DIR] (see mnistlab.tasks.compare)."""

import sys

from mnistlab.cli import run
from mnistlab.tasks.compare import main

if __name__ == "__main__":
    run(lambda: main(sys.argv[1:]))
