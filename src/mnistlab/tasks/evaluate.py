"""The task behind eval.py: evaluate a checkpoint on the test or validation set, or watch a run."""

import json
import os
import time
from pathlib import Path
from typing import Optional

import torch
from omegaconf import DictConfig

from mnistlab.callbacks.predictions import RecordPredictions
from mnistlab.errors import UserError
from mnistlab.received.checkpoint import read_checkpoint
from mnistlab.received.files import refuse_links
from mnistlab.runs.checkpoints import checkpoint_files, global_step, resolve_checkpoint
from mnistlab.runs.evaluator import Evaluator, quiet_lightning
from mnistlab.runs.report import write_eval_details
from mnistlab.runs.run_dir import FINAL_METRICS, run_dir_of
from mnistlab.settings.schema import validate


def default_output(ckpt_path: Path, run_dir: Optional[Path], split: str) -> Path:
    if run_dir is not None:
        return run_dir / "eval" / f"{ckpt_path.stem}-{split}.json"
    return ckpt_path.with_name(f"{ckpt_path.stem}-{split}.json")


def evaluate(cfg: DictConfig) -> dict:
    """eval.py: print and save the metrics of one checkpoint, or watch a run (watch.enabled)."""
    validate(cfg)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    quiet_lightning()
    if cfg.watch.enabled:
        return watch(cfg)

    ckpt_path = resolve_checkpoint(cfg.ckpt_path)
    read_checkpoint(ckpt_path, cfg.trusted_modules, cfg.max_parameters)  # refused before any data loads
    run_dir = run_dir_of(ckpt_path)
    recorder = RecordPredictions()  # for the confusion matrix and mistakes beside the metrics
    evaluator = Evaluator(run_dir, cfg.data.data_dir, cfg.trusted_modules, cfg.max_parameters)
    metrics = evaluator(ckpt_path, cfg.split, callbacks=[recorder])
    if run_dir is not None and not cfg.output:
        refuse_links(run_dir)  # the results go to <run>/eval/
    output = Path(cfg.output) if cfg.output else default_output(ckpt_path, run_dir, cfg.split)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(metrics, indent=2))
    split = cfg.split
    print(
        f"{split}/acc {metrics[f'{split}/acc']:.4f}  {split}/loss {metrics[f'{split}/loss']:.4f}  "
        f"(step {metrics['step']}, {os.path.relpath(ckpt_path)})"
    )
    details = write_eval_details(recorder.predictions, output, f"{os.path.relpath(ckpt_path)} on the {split} set")
    print(
        f"metrics saved in {os.path.relpath(output)}; confusion matrix and mistakes in "
        f"{', '.join(path.name for path in details)}"
    )
    return metrics


class NewCheckpoints:
    """Checkpoints of a run not seen before, once per training step (last.ckpt and the best are often
    the same step). A file still being written fails to load and is tried again at the next look."""

    def __init__(self, run_dir: Path):
        self.files = lambda: checkpoint_files(run_dir)
        self.looked_at: dict = {}  # path -> (mtime, size) when read
        self.steps: set = set()

    def __call__(self) -> list:
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
