"""Training throughput of mnistlab against a hand-written PyTorch loop and torchvision's DataLoader path,
and the start-up times of train.py.

    python benchmarks/throughput.py data.data_dir=<your MNIST folder>          # the full run, a few minutes
    python benchmarks/throughput.py --quick data.data_dir=...             # a few steps: does it run?

key=value arguments are Hydra overrides of conf/train.yaml, as for train.py (e.g. data.batch_size=128,
threads=1, trainer.precision=bf16-mixed). For each model, one process times, interleaved:
  framework   train.py's own datamodule, Classifier and Trainer (default logging and progress bar), fitted;
  plain       a hand-written loop: the same network, batch size, in-memory uint8 tensors, optimizer and
              learning-rate schedule (forward, cross-entropy, backward, step);
  dataloader  torchvision's MNIST with ToTensor()+Normalize through a DataLoader, same network and optimizer.
Each timing is one fit of the framework that hands the CPU to the other two every few steps (`--chunks` turns),
so that all three see the same drifts of the machine's speed; it skips `--warmup` steps, then times `--steps`
steps of each (by default as many as the plain loop runs in `--seconds`, within the first epoch). samples/s and
ms/step are medians of `--repeats` timings; the ratios and the added time are medians of each timing's own.
See docs/performance.md.
"""

import argparse
import gzip
import json
import logging
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from startup import first_step_times  # benchmarks/, beside this file

from mnistlab.cli import ArgumentParser, run

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("softmax", "mlp", "cnn", "lstm")
CONTENDERS = ("framework", "plain", "dataloader")
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}  # cpu: this process's CPU time
now = CLOCKS["wall"]  # what the step timings read; --clock sets it
TARGETS = {  # on a 2-core CPU; start-up: seconds from process start
    "framework/plain": {"mlp": 0.85, "cnn": 0.95, "lstm": 0.95},
    "framework/dataloader": {"mlp": 5.0},
    "softmax added ms/step": 0.5,
    "--help s": 1.0,
    "--cfg job s": 1.0,
    "first_step s": 5.0,
}


def compose(overrides: list):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from mnistlab.settings.schema import register_schemas

    register_schemas()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return hydra_compose("train", overrides=overrides)


def device_of(cfg):
    import torch

    gpu = torch.cuda.is_available() and cfg.trainer.accelerator in ("auto", "gpu", "cuda")
    return torch.device("cuda" if gpu else "cpu")


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def autocast(cfg, device):
    """The plain loops follow trainer.precision=bf16-mixed with the same autocast as Lightning's."""
    import contextlib

    import torch

    bf16 = str(cfg.trainer.precision) == "bf16-mixed"
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def network(cfg, device, with_normalize: bool):
    """The network the framework trains, built by the same code, with its layout (channels_last for a CNN)
    and compile=true as the framework applies them; without its Normalize layer for the DataLoader path."""
    from mnistlab.perf.speedups import apply_speedups
    from mnistlab.tasks.train import build_classifier

    classifier = build_classifier(cfg)
    apply_speedups(classifier)
    net = (classifier.net if with_normalize else classifier.net[1]).to(device)
    if cfg.compile:
        net.compile()
    return net


def optimizer_and_schedule(cfg, net, steps_per_epoch: int, total_steps: int) -> tuple:
    """What Classifier.configure_optimizers makes, written out: the optimizer and its per-step schedule."""
    from hydra.utils import instantiate

    optimizer = instantiate(cfg.optimizer, _convert_="all")(params=net.parameters())
    schedule = (
        instantiate(cfg.scheduler, _convert_="all")(optimizer, steps_per_epoch=steps_per_epoch, total_steps=total_steps)
        if cfg.scheduler
        else None
    )
    return optimizer, schedule


def tensor_batches(images, labels, batch_size: int, augment: dict):
    """Endless batches cut from uint8 tensors by a fresh permutation each epoch, scaled to [0, 1] floats
    (and shifted, rotated and scaled as data.augment asks, as the framework's datamodule does)."""
    import torch

    from mnistlab.data.augment import random_affine

    while True:
        for index in torch.randperm(len(labels), device=labels.device).split(batch_size):
            batch = images.index_select(0, index).unsqueeze(1).float().div_(255)  # cut as TensorBatches does
            if any(augment.values()):
                batch = random_affine(batch, augment["shift"], augment["rotate"], augment["scale"])
            yield batch, labels.index_select(0, index)


def loader_batches(loader, device):
    while True:
        for images, labels in loader:
            yield images.to(device, non_blocking=True), labels.to(device, non_blocking=True)


class Stepper:
    """A hand-written training loop that runs `n` more steps when asked: forward, cross-entropy, zero_grad,
    backward, optimizer step, schedule step; `batches` yields (images, labels) on `device`."""

    def __init__(self, cfg, net, batches, steps_per_epoch: int, total_steps: int, device):
        self.cfg, self.net, self.batches, self.device = cfg, net, batches, device
        self.optimizer, self.schedule = optimizer_and_schedule(cfg, net, steps_per_epoch, total_steps)
        net.train()

    def run(self, n: int) -> float:
        """Seconds for n steps."""
        import torch.nn.functional as F

        synchronize(self.device)
        start = now()
        for _ in range(n):
            images, labels = next(self.batches)
            with autocast(self.cfg, self.device):
                loss = F.cross_entropy(self.net(images), labels)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            if self.schedule is not None:
                self.schedule.step()
        synchronize(self.device)
        return now() - start


def plain_stepper(cfg, data: tuple, total_steps: int) -> Stepper:
    device = device_of(cfg)
    images, labels = (t.to(device) for t in data)
    batch_size = cfg.data.batch_size
    batches = tensor_batches(images, labels, batch_size, cfg.data.augment)
    return Stepper(
        cfg, network(cfg, device, with_normalize=True), batches, -(-len(labels) // batch_size), total_steps, device
    )


def dataloader_stepper(cfg, dataset, total_steps: int, workers: int) -> Stepper:
    from torch.utils.data import DataLoader

    device = device_of(cfg)
    loader = DataLoader(
        dataset, batch_size=cfg.data.batch_size, shuffle=True, num_workers=workers, pin_memory=device.type == "cuda"
    )
    net = network(cfg, device, with_normalize=False)  # the transform normalises
    return Stepper(cfg, net, loader_batches(loader, device), len(loader), total_steps, device)


def interleaving_clock(others: dict, warmup: int, steps: int, chunk: int):
    """A callback timing the framework's training steps between their starts, and handing the CPU to the other
    contenders every `chunk` steps for `chunk` steps each (their time left out of the framework's): all three
    see the same drifts of the machine's speed. Validation, if --steps runs past an epoch end, is left out."""
    import lightning as L

    class InterleavingClock(L.Callback):
        def __init__(self):
            self.seconds = {"framework": 0.0, **{name: 0.0 for name in others}}
            self.step, self.last = 0, None

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            synchronize(pl_module.device)
            if warmup < self.step <= warmup + steps:
                self.seconds["framework"] += now() - self.last
            if self.step == warmup:
                for stepper in others.values():
                    stepper.run(warmup)  # their own warm-up
            if warmup <= self.step < warmup + steps and (self.step - warmup) % chunk == 0:
                turn = (self.step - warmup) // chunk
                for name in list(others) if turn % 2 == 0 else list(others)[::-1]:
                    self.seconds[name] += others[name].run(min(chunk, warmup + steps - self.step))
            self.step += 1
            self.last = now()

        def on_validation_start(self, trainer, pl_module):
            self.validation_start = now()

        def on_validation_end(self, trainer, pl_module):
            if trainer.state.fn == "fit" and self.last is not None:
                self.last += now() - self.validation_start

    return InterleavingClock()


def timed_repeat(cfg, train_data: tuple, dataset, args, steps: int, output_dir: Path) -> dict:
    """One fit of train.py's datamodule, Classifier and Trainer, with the plain loop and the DataLoader path
    interleaved in chunks: seconds per contender for `steps` steps after `warmup`."""
    from mnistlab.tasks.train import build

    total = args.warmup + steps
    others = {
        "plain": plain_stepper(cfg, train_data, total),
        "dataloader": dataloader_stepper(cfg, dataset, total, args.workers),
    }
    cfg = cfg.copy()
    cfg.paths.output_dir = str(output_dir)  # a fresh run directory each time, as each train.py run has
    output_dir.mkdir(parents=True)
    datamodule, model, trainer = build(cfg)
    clock = interleaving_clock(others, args.warmup, steps, chunk=max(1, -(-steps // args.chunks)))
    trainer.callbacks.append(clock)
    with open(output_dir.parent / "framework.log", "a") as log, redirect_stdout(log), redirect_stderr(log):
        trainer.fit(model, datamodule=datamodule)  # its progress bar and model summary go to the log file
    return clock.seconds


def torchvision_mnist(cfg, root: Path):
    """torchvision's MNIST reads only unpacked files: unpack the .gz files of data.data_dir into `root`."""
    from torchvision import datasets, transforms

    source, raw = Path(cfg.data.data_dir) / "MNIST" / "raw", root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for packed in source.glob("*-ubyte.gz"):
        with gzip.open(packed, "rb") as f_in, open(raw / packed.stem, "wb") as f_out:
            shutil.copyfileobj(f_in, f_out)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((cfg.data.mean,), (cfg.data.std,))])
    return datasets.MNIST(str(root), train=True, transform=transform, download=False)


def choose_steps(cfg, train_data: tuple, args) -> int:
    """As many steps as the plain loop runs in args.seconds (20 to 2000), all inside the first epoch: the
    framework's epoch end (validation, checkpoints) is per epoch, not per step, and the plain loop has none."""
    stepper = plain_stepper(cfg, train_data, args.warmup + 10)
    stepper.run(args.warmup)
    budget = round(args.seconds * 10 / stepper.run(10))
    in_first_epoch = -(-len(train_data[1]) // cfg.data.batch_size) - args.warmup - 1
    return max(1, min(in_first_epoch, max(20, min(2000, budget))))


def benchmark_model(name: str, overrides: list, args, dataset, work: Path) -> dict:
    """samples/s per contender: the median over the repeats, the contenders interleaved within each repeat."""
    from mnistlab.settings.schema import validate
    from mnistlab.tasks.train import build_datamodule

    cfg = compose(overrides + [f"model={name}", "paths.output_dir=unused"])
    validate(cfg)
    data = build_datamodule(cfg, download=False, seed=0)
    data.setup("fit")
    train_data = data.splits["train"]  # the framework's own training tensors
    steps = args.steps or choose_steps(cfg, train_data, args)
    fit_steps = args.warmup + steps + 1  # the clock needs the start of the step after the last one
    cfg = compose(
        overrides
        + [f"model={name}", "trainer.max_epochs=-1", f"trainer.max_steps={fit_steps}", "paths.output_dir=unused"]
    )
    seconds = {contender: [] for contender in CONTENDERS}
    for repeat in range(args.repeats):
        for contender, value in timed_repeat(cfg, train_data, dataset, args, steps, work / f"{name}{repeat}").items():
            seconds[contender].append(value)
    batch_size = cfg.data.batch_size
    return {
        "batch_size": batch_size,
        "steps": steps,
        "ms_per_step": {c: 1000 * statistics.median(s) / steps for c, s in seconds.items()},
        "samples_per_s": {c: steps * batch_size / statistics.median(s) for c, s in seconds.items()},
        # paired: each repeat's contenders saw the same machine, so its ratio is the steadier statistic
        "fw/plain": statistics.median(p / f for f, p in zip(seconds["framework"], seconds["plain"])),
        "fw/dl": statistics.median(d / f for f, d in zip(seconds["framework"], seconds["dataloader"])),
        "added_ms": statistics.median(1000 * (f - p) / steps for f, p in zip(seconds["framework"], seconds["plain"])),
        "all_seconds": seconds,
    }


def wall_time(command: list, env=None) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"error: {' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return elapsed


def startup(overrides: list, repeats: int, work: Path) -> dict:
    train = [sys.executable, str(ROOT / "train.py")]
    runs = [first_step_times(overrides, work / f"start{i}") for i in range(repeats)]
    return {
        "--help s": statistics.median(wall_time(train + ["--help"]) for _ in range(repeats)),
        "--cfg job s": statistics.median(wall_time(train + overrides + ["--cfg", "job"]) for _ in range(repeats)),
        **{f"{event} s": statistics.median(run[event] for run in runs) for event in runs[0]},
    }


def verdict(value: float, target: float, higher_is_better: bool = True) -> str:
    return "ok" if (value >= target if higher_is_better else value <= target) else "MISSED"


def report(results: dict, start: dict) -> str:
    """The table: samples/s of each contender, the ratios, the added time per step and the targets' verdicts."""
    lines = [
        f"{'model':8} {'batch':>5} {'steps':>5} | samples/s: {'framework':>9} {'plain':>9} {'dataloader':>10} | "
        f"{'fw/plain':>8} {'fw/dl':>6} {'added ms/step':>13} | targets"
    ]
    for name, r in results.items():
        s = r["samples_per_s"]
        ratio_plain, ratio_dl, added = r["fw/plain"], r["fw/dl"], r["added_ms"]
        checks = []
        if name in TARGETS["framework/plain"]:
            target = TARGETS["framework/plain"][name]
            checks.append(f"fw/plain >= {target} {verdict(ratio_plain, target)}")
        if name in TARGETS["framework/dataloader"]:
            target = TARGETS["framework/dataloader"][name]
            checks.append(f"fw/dl >= {target} {verdict(ratio_dl, target)}")
        if name == "softmax":
            target = TARGETS["softmax added ms/step"]
            checks.append(f"added <= {target} ms {verdict(added, target, higher_is_better=False)}")
        lines.append(
            f"{name:8} {r['batch_size']:5d} {r['steps']:5d} | {'':10} {s['framework']:9.0f} {s['plain']:9.0f} "
            f"{s['dataloader']:10.0f} | {ratio_plain:8.3f} {ratio_dl:6.2f} {added:13.3f} | {'; '.join(checks)}"
        )
    lines.append(
        "ms/step (framework / plain / dataloader): "
        + ", ".join(
            f"{name} {r['ms_per_step']['framework']:.2f} / {r['ms_per_step']['plain']:.2f} / "
            f"{r['ms_per_step']['dataloader']:.2f}"
            for name, r in results.items()
        )
    )
    if start:
        lines.append(
            "start-up, s (median): "
            + ", ".join(
                f"{key[:-2]} {value:.2f}"
                + (f" (<= {TARGETS[key]} {verdict(value, TARGETS[key], False)})" if key in TARGETS else "")
                for key, value in start.items()
            )
        )
    return "\n".join(lines)


def parse_args(argv=None):
    parser = ArgumentParser(
        prog="benchmarks/throughput.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of conf/train.yaml, e.g. data.data_dir=...")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated, default: all four")
    parser.add_argument("--warmup", type=int, default=30, help="untimed steps before each timing (default 30)")
    parser.add_argument("--steps", type=int, help="timed steps per timing (default: see --seconds)")
    parser.add_argument(
        "--seconds",
        type=float,
        default=2.0,
        help="without --steps, time as many steps as the plain loop runs in this many seconds (20 to 2000; default 2)",
    )
    parser.add_argument("--repeats", type=int, default=5, help="timings per contender; the median counts")
    parser.add_argument(
        "--chunks",
        type=int,
        default=10,
        help="the contenders take turns this many times within each timing (default 10)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="DataLoader workers of the conventional path (default 0, as the usual Lightning+Hydra template)",
    )
    parser.add_argument(
        "--clock",
        choices=list(CLOCKS),
        default="wall",
        help="wall: elapsed time (default); cpu: this process's CPU time, steadier on a busy "
        "machine (leaves out DataLoader workers' time: use with --workers 0)",
    )
    parser.add_argument("--startup-repeats", type=int, default=3, help="runs of each start-up measurement")
    parser.add_argument("--no-startup", action="store_true", help="skip the start-up measurements")
    parser.add_argument("--quick", action="store_true", help="2 warm-up and 5 timed steps, once: a smoke test")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_intermixed_args(argv)  # overrides before and after the options
    if args.quick:
        args.warmup, args.steps, args.repeats, args.startup_repeats = 2, 5, 1, 1
    for option in ("warmup", "steps", "repeats", "startup_repeats", "seconds", "chunks"):
        if getattr(args, option) is not None and getattr(args, option) <= (-1 if option == "warmup" else 0):
            parser.error(f"--{option.replace('_', '-')} is too small: {getattr(args, option)}")
    args.models = args.models.split(",")
    unknown = set(args.models) - set(MODELS)
    if unknown:
        parser.error(f"unknown model(s) {', '.join(sorted(unknown))}; choose from {', '.join(MODELS)}")
    return args


def main(argv=None) -> dict:
    global now
    args = parse_args(argv)
    now = CLOCKS[args.clock]
    import warnings

    import lightning.pytorch  # noqa: F401  (sets its logger's level, which the line below then lowers)
    import torch

    from mnistlab.perf.speedups import cheap_cuda_checks
    from mnistlab.settings.schema import validate
    from mnistlab.tasks.train import build_datamodule

    cheap_cuda_checks()  # as train.py does; a plain loop without Lightning never has the slow check either

    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # "GPU available: ..." once per fit
    cfg = compose(args.overrides + [f"model={args.models[0]}", "paths.output_dir=unused"])  # model.* overrides compose
    validate(cfg)
    build_datamodule(cfg).prepare_data()  # a clear message if missing
    if cfg.threads is not None:  # every contender runs with the same thread count
        torch.set_num_threads(cfg.threads)
    print(
        f"mnistlab throughput: torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"device {device_of(cfg)}, batch {cfg.data.batch_size}, precision {cfg.trainer.precision}, "
        f"{args.warmup} warm-up + {args.steps or f'~{args.seconds:g} s of'} timed steps, "
        f"{args.chunks} turns, median of {args.repeats}, "
        f"{args.clock} clock",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="mnistlab-bench-") as tmp:
        work = Path(tmp)
        dataset = torchvision_mnist(cfg, work / "torchvision")
        results = {}
        for name in args.models:
            results[name] = benchmark_model(name, args.overrides, args, dataset, work / "runs")
            print(report({name: results[name]}, {}).splitlines()[1], flush=True)
        start = {} if args.no_startup else startup(args.overrides, args.startup_repeats, work / "startup")
    print()
    print(report(results, start))
    if args.quick:
        print("(--quick: too few steps for the timings to mean anything; it only shows that everything runs)")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "startup": start}, indent=2))
    return {"results": results, "startup": start}


if __name__ == "__main__":
    run(main)
