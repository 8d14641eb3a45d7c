"""train.py of a checkout run up to its task, which is stubbed: Hydra's start, composing and checks, no torch.

    python benchmarks/to_task.py <checkout> [train.py overrides]    (benchmarks/startup.py runs it)

Prints {"task": <time.time() when the task was entered>} (the caller took the launch time) and ends the process
there, as first_step.py's clock does: nothing after the task is timed, and a copied checkout's files write no
coverage data into the tests' report."""

import json
import os
import runpy
import sys
import time
import types
from pathlib import Path

checkout = Path(sys.argv[1])
stub = types.ModuleType("mnistlab.tasks.train")  # what train.py imports once the config is checked


def task(cfg) -> None:
    print(json.dumps({"task": time.time()}), flush=True)
    os._exit(0)


stub.train = task
sys.modules[stub.__name__] = stub
sys.argv = [str(checkout / "train.py"), *sys.argv[2:]]
runpy.run_path(sys.argv[0], run_name="__main__")
