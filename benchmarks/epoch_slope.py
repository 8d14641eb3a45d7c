"""The framework's cost per epoch, measured on whole processes: train.py against a hand-written PyTorch loop.

    python benchmarks/epoch_slope.py data.data_dir=<your MNIST folder>                  # every model, ~30 min
    python benchmarks/epoch_slope.py --models mlp data.data_dir=<...> data.batch_size=128
    python benchmarks/epoch_slope.py --epochs 1 2 --repeats 1 data.data_dir=<...>     # does it run?
    python benchmarks/epoch_slope.py --before fast_loop=false data.data_dir=<...>       # and the framework so
    python benchmarks/epoch_slope.py --models "" --presets cnn_minute,mlp_best data.data_dir=<...>    # presets

For each model, whole processes are timed from launch to exit, taking turns: `python train.py model=<m>
trainer.max_epochs=E <overrides>` (its default configuration: validation every epoch, logging, checkpoints, the
final test and report) and this file's own plain loop (`--raw`: the same network, batch size, optimizer and
schedule over the same in-memory uint8 tensors, with the same augmentation, label smoothing, L2 and EMA weights
when the configuration has them, validating when the framework does and testing at the end, nothing else), each
for the two epoch counts of `--epochs` (1 and 3); `--presets` times `experiment=<preset>` the same way. The
slope, (time at 3 - time at 1) / 2, is the time of an epoch with start-up cancelled; framework/raw is the raw
loop's slope over the framework's (1.0: no cost per epoch). Each process's own peak resident memory is printed
too. Medians of `--repeats`. `--before OVERRIDE` (repeatable) times a third side in the same turns, the framework
with those overrides too (the "before" of a change that is a setting). Beside the slopes, each side's epochs as its
own process timed them (train.py's epoch lines; the plain loop's own clock), all but the first of the longer runs:
free of start-up, test and exit, whose noise a slope of long epochs must outlast.

benchmarks/throughput.py measures steps inside one process instead: docs/performance.md says why the two differ.
"""

import argparse
import json
import math
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from processes import timed  # noqa: E402  (benchmarks/, beside this file)

MODELS = ("softmax", "mlp", "cnn", "lstm")


def chosen(name: str) -> str:
    """The override that picks a row's configuration: a model's default, or a preset."""
    return f"model={name}" if name in MODELS else f"experiment={name}"


def framework_command(name: str, epochs: int, overrides: list, run_dir: Path) -> list:
    return [
        sys.executable,
        str(ROOT / "train.py"),
        chosen(name),
        f"trainer.max_epochs={epochs}",
        "trainer.max_steps=-1",  # the tutorial presets count steps: here epochs count
        *overrides,
        f"hydra.run.dir={run_dir}",
    ]


def raw_command(name: str, epochs: int, overrides: list) -> list:
    return [sys.executable, __file__, "--raw", str(epochs), chosen(name), *overrides]


def raw_loop(epochs: int, overrides: list) -> None:
    """A hand-written loop: what train.py's default run does each epoch, written out in plain PyTorch."""
    import copy

    import torch
    import torch.nn.functional as F
    from throughput import compose, device_of, network, optimizer_and_schedule  # benchmarks/, beside this file

    from mnistlab.compat.torch import add_scaled_all, lerp_all
    from mnistlab.data.augment import random_affine
    from mnistlab.data.datasets import DATASETS
    from mnistlab.data.idx import read_idx

    cfg = compose(overrides)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed if cfg.seed is not None else 0)
    device = device_of(cfg)
    raw = Path(cfg.data.data_dir) / DATASETS[cfg.data.dataset].folder / "raw"
    load = lambda prefix: (  # noqa: E731
        read_idx(raw / f"{prefix}-images-idx3-ubyte.gz").to(device),
        read_idx(raw / f"{prefix}-labels-idx1-ubyte.gz").long().to(device),
    )
    (images, labels), (test_images, test_labels) = load("train"), load("t10k")
    v = cfg.data.val_size  # validation: the first val_size images, as the data module's default split
    train, val, test = (images[v:], labels[v:]), (images[:v], labels[:v]), (test_images, test_labels)
    batch_size, eval_batch_size = cfg.data.batch_size, cfg.data.eval_batch_size
    steps_per_epoch = math.ceil(len(train[1]) / batch_size)
    net = network(cfg, device, with_normalize=True)
    optimizer, schedule = optimizer_and_schedule(cfg, net, steps_per_epoch, steps_per_epoch * epochs)
    weights = [p for p in net.parameters() if p.ndim > 1]
    l2, smoothing = cfg.model.get("l2", 0.0), cfg.model.get("label_smoothing", 0.0)
    shift, rotate, scale = (cfg.data.augment[key] for key in ("shift", "rotate", "scale"))
    ema = copy.deepcopy(net).requires_grad_(False).eval() if cfg.ema.enabled else None
    evaluated = ema if ema is not None else net
    validate_every = cfg.trainer.get("check_val_every_n_epoch") or 1
    interval = cfg.trainer.get("val_check_interval")
    validate_steps = interval if isinstance(interval, int) else None  # every N steps (mlp_tutorial), else epochs

    def accuracy(split) -> float:
        evaluated.eval()
        correct = 0
        with torch.inference_mode():
            for x, y in zip(split[0].split(eval_batch_size), split[1].split(eval_batch_size)):
                correct += (evaluated(x.unsqueeze(1).float().div_(255)).argmax(1) == y).sum().item()
        net.train()
        return correct / len(split[1])

    step, val_acc, validations, validated_at, epoch_seconds = 0, None, 0, None, []
    for epoch in range(epochs):
        started = time.perf_counter()
        for index in torch.randperm(len(train[1]), device=device).split(batch_size):
            x = train[0].index_select(0, index).unsqueeze(1).float().div_(255)
            if shift or rotate or scale:
                x = random_affine(x, shift, rotate, scale)
            loss = F.cross_entropy(net(x), train[1].index_select(0, index), label_smoothing=smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if l2:  # the penalty l2 * 0.5 * sum(w**2)'s gradient, added as the framework does (the same numbers)
                with torch.no_grad():
                    add_scaled_all([w.grad for w in weights], weights, l2)
            optimizer.step()
            step += 1
            if ema is not None:  # TF's average with its warm-up; buffers (BN statistics) copied
                with torch.no_grad():
                    decay = min(cfg.ema.decay, (1 + step) / (10 + step))
                    lerp_all(list(ema.parameters()), list(net.parameters()), 1 - decay)
                    for average, buffer in zip(ema.buffers(), net.buffers()):
                        average.copy_(buffer)
            if schedule is not None:
                schedule.step()
            if validate_steps and step % validate_steps == 0:
                val_acc, validations, validated_at = accuracy(val), validations + 1, step
        this_epoch = not validate_steps and (epoch + 1) % validate_every == 0
        if this_epoch or (epoch + 1 == epochs and validated_at != step):  # the last step too, as ValidateAtStop
            val_acc, validations, validated_at = accuracy(val), validations + 1, step
        epoch_seconds.append(time.perf_counter() - started)  # its validation included, as in train.py's epoch line
    outcome = {
        "val/acc": val_acc,
        "test/acc": accuracy(test),
        "validations": validations,
        "epoch_seconds": epoch_seconds,
    }
    print(json.dumps(outcome))


EPOCH_LINE = re.compile(r"^epoch \d+(?:/\d+)?  step \d+.*  \((\d+(?:\.\d+)?) s\)$", re.MULTILINE)  # ProgressBar's


def epochs_inside(side: str, stdout: str) -> list:
    """Each epoch's seconds as the process itself timed it: train.py's epoch lines, the plain loop's JSON."""
    if side == "raw":
        return json.loads(stdout.strip().splitlines()[-1])["epoch_seconds"]
    return [float(seconds) for seconds in EPOCH_LINE.findall(stdout)]


def measure(name: str, epochs: tuple, overrides: list, repeats: int, work: Path, before: list) -> dict:
    """Median slopes (s an epoch) and peaks of each side, their runs taking turns (the order reversed every other
    repeat). Sides: framework, raw, and `before` (the framework with the `before` overrides) when given."""
    sides = ("framework", "raw", "before") if before else ("framework", "raw")
    seconds = {(side, e): [] for side in sides for e in epochs}
    peaks = {side: [] for side in sides}
    inside = {side: [] for side in sides}  # per repeat: the mean epoch after the first of the longer run
    for repeat in range(repeats):
        for e in epochs:
            for side in sides if repeat % 2 == 0 else sides[::-1]:
                if side == "raw":
                    command = raw_command(name, e, overrides)
                else:
                    extra = before if side == "before" else []
                    command = framework_command(name, e, [*overrides, *extra], work / f"{name}-{side}-{e}-{repeat}")
                took, stdout, peak = timed(command, ROOT)
                seconds[(side, e)].append(took)
                peaks[side].append(peak)
                timed_inside = epochs_inside(side, stdout)
                if len(timed_inside) != e:
                    raise SystemExit(f"error: {' '.join(command)}: {len(timed_inside)} epochs timed, not {e}")
                if e == epochs[1]:
                    inside[side].append(statistics.mean(timed_inside[1:]))
    low, high = epochs
    slope = {
        side: statistics.median(b - a for a, b in zip(seconds[(side, low)], seconds[(side, high)])) / (high - low)
        for side in sides
    }
    table = {}
    for side in sides:
        table[f"{side} s/epoch"] = slope[side]
        if side != "raw":
            table[f"{side}/raw"] = slope["raw"] / slope[side]
        table[f"{side} start s"] = statistics.median(seconds[(side, low)]) - low * slope[side]
        table[f"{side} peak MiB"] = statistics.median(peaks[side])
        table[f"{side} inside s/epoch"] = statistics.median(inside[side])
        if side != "raw":
            inside_epoch = table[f"{side} inside s/epoch"]  # 0 only for an epoch under 5 ms (its line's 0.00 s)
            table[f"{side}/raw inside"] = statistics.median(inside["raw"]) / inside_epoch if inside_epoch else math.nan
    return table


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated: softmax, mlp, cnn, lstm")
    parser.add_argument("--presets", default="", help="comma-separated conf/experiment names, e.g. cnn_minute")
    parser.add_argument("--epochs", type=int, nargs=2, default=(1, 3), help="the two epoch counts of the slope")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the table here")
    parser.add_argument(
        "--before", action="append", default=[], metavar="OVERRIDE", help="also time the framework with it"
    )
    parser.add_argument("--raw", type=int, help=argparse.SUPPRESS)  # this file run as the plain loop
    parser.add_argument("overrides", nargs="*", help="train.py overrides for both sides (data.data_dir=...)")
    args = parser.parse_args(argv)
    if args.raw is not None:
        return raw_loop(args.raw, args.overrides)
    low, high = args.epochs
    if not 0 < low < high:
        raise SystemExit("error: --epochs takes two counts, the first smaller (1 3)")
    models, presets = [m for m in args.models.split(",") if m], [p for p in args.presets.split(",") if p]
    if unknown := set(models) - set(MODELS):
        raise SystemExit(f"error: --models: unknown {', '.join(sorted(unknown))} (of {', '.join(MODELS)})")
    known = sorted(path.stem for path in (ROOT / "conf" / "experiment").glob("*.yaml"))
    if unknown := set(presets) - set(known):
        raise SystemExit(f"error: --presets: unknown {', '.join(sorted(unknown))} (of {', '.join(known)})")
    if not models + presets:
        raise SystemExit("error: nothing to time: give --models or --presets")
    columns = ("framework s/epoch", "raw s/epoch", "framework/raw", "framework peak MiB", "raw peak MiB")
    if args.before:
        print(f"before: the framework with {' '.join(args.before)}")
        columns += ("before s/epoch", "before/raw", "before peak MiB")
    width = max(8, *map(len, models + presets))
    print(f"{'model':{width}} " + " ".join(f"{c:>18}" for c in columns), flush=True)  # a column per side's figure
    table = {}
    with tempfile.TemporaryDirectory(prefix="mnistlab-slope-") as tmp:
        for name in models + presets:
            table[name] = measure(name, (low, high), args.overrides, args.repeats, Path(tmp), args.before)
            print(f"{name:{width}} " + " ".join(f"{table[name][c]:>18.3f}" for c in columns), flush=True)
    print(
        f"\nslopes of whole processes, {low} against {high} epochs, median of {args.repeats}; start-up s: "
        + ", ".join(f"{m} {t['framework start s']:.1f} / {t['raw start s']:.1f}" for m, t in table.items())
    )
    print(
        f"epochs timed inside the {high}-epoch processes (all but the first; train.py's own epoch lines), "
        "framework / raw s: "
        + ", ".join(
            f"{m} {t['framework inside s/epoch']:.2f} / {t['raw inside s/epoch']:.2f} = {t['framework/raw inside']:.3f}"
            for m, t in table.items()
        )
    )
    if args.json:
        args.json.write_text(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()
