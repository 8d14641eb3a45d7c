"""eval.py watch=true: evaluate each new checkpoint of a training run on the validation set."""

import json
import os
import time
from pathlib import Path

from omegaconf import DictConfig

from mnistlab.errors import UserError
from mnistlab.received.files import refuse_links
from mnistlab.runs.run_dir import FINAL_METRICS, run_dir_of


class NewCheckpoints:
    """Checkpoints of a run not seen before, once per training step (last.ckpt and the best are often
    the same step). A file still being written fails to load and is tried again at the next look."""

    def __init__(self, run_dir: Path):
        from mnistlab.runs.checkpoints import checkpoint_files

        self.files = lambda: checkpoint_files(run_dir)
        self.looked_at: dict = {}  # path -> (mtime, size) when read
        self.steps: set = set()

    def __call__(self) -> list:
        from mnistlab.runs.checkpoints import global_step

        new = []
        for path in sorted(self.files(), key=lambda p: p.stat().st_mtime_ns if p.exists() else 0):
            try:
                stat = path.stat()
            except FileNotFoundError:  # replaced by the training in the meantime
                continue
            signature = (stat.st_mtime_ns, stat.st_size)
            if self.looked_at.get(path) == signature:
                continue
            step = global_step(path)
            if step is None:
                continue
            self.looked_at[path] = signature
            if step not in self.steps:
                self.steps.add(step)
                new.append((step, path))
        return sorted(new)


def watch(cfg: DictConfig) -> list:
    from mnistlab.tools.eval import Evaluator

    run_dir = run_dir_of(cfg.ckpt_path)
    if run_dir is None or Path(cfg.ckpt_path).is_file():
        raise UserError(f"watch=true needs ckpt_path=<run directory>, got {cfg.ckpt_path}")
    evaluate = Evaluator(run_dir, cfg.data.data_dir, cfg.trusted_modules, cfg.max_parameters)
    if not cfg.output:
        refuse_links(run_dir)  # the results go to <run>/eval/
    output = Path(cfg.output) if cfg.output else run_dir / "eval" / "watch-val.jsonl"
    output.parent.mkdir(parents=True, exist_ok=True)
    new_checkpoints, results = NewCheckpoints(run_dir), []
    started = time.monotonic()
    print(f"watching {os.path.relpath(run_dir)}/checkpoints every {cfg.watch.interval:g} s (Ctrl-C stops)", flush=True)
    try:
        while True:
            finished = (run_dir / FINAL_METRICS).exists()  # before looking: the last checkpoints are in
            for step, path in new_checkpoints():
                metrics = evaluate(path, "val")
                results.append(metrics)
                print(
                    f"step {step}: val/acc {metrics['val/acc']:.4f}  val/loss {metrics['val/loss']:.4f}  ({path.name})",
                    flush=True,
                )
                with output.open("a") as file:
                    file.write(json.dumps(metrics) + "\n")
            if finished:
                print("training finished: watch ends", flush=True)
                break
            if cfg.watch.timeout is not None and time.monotonic() - started > cfg.watch.timeout:
                print(f"no end of training within watch.timeout={cfg.watch.timeout:g} s: watch ends", flush=True)
                break
            time.sleep(cfg.watch.interval)
    except KeyboardInterrupt:
        print("watch stopped (Ctrl-C)", flush=True)
    return results
