"""Training-step time of the CNN presets with the default (NCHW) and the channels_last layout, which
mnistlab.perf.speedups.apply_speedups picks for every convolutional network.

    python benchmarks/layout.py                       # the CNN presets, batch sizes as configured
    python benchmarks/layout.py --steps 5 --repeats 1  # does it run? (the tests do this)

Each layout trains its own copy of the network on one random batch (forward, cross-entropy, backward,
optimizer step); the two are timed in turn, alternating, and the table shows the median of --repeats.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import compose  # noqa: E402  (the same config composition as train.py's)

PRESETS = ("cnn_tutorial", "speedrun", "cnn_best")


def stepper(cfg, channels_last: bool):
    import torch
    import torch.nn.functional as F
    from hydra.utils import instantiate

    from mnistlab.tasks.train import build_classifier

    net = build_classifier(cfg).net
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    optimizer = instantiate(cfg.optimizer)(net.parameters())
    images, labels = torch.rand(cfg.data.batch_size, 1, 28, 28), torch.randint(0, 10, (cfg.data.batch_size,))

    def step():
        loss = F.cross_entropy(net(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def ms_per_step(step, steps: int) -> float:
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - started) / steps * 1000


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default=",".join(PRESETS), help="comma-separated, from conf/experiment/")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per repeat (after 10 warm-up steps)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. threads=1")
    args = parser.parse_args()

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU; ms per training step, "
        f"median of {args.repeats} x {args.steps} steps"
    )
    print(f"{'preset':<14}{'batch':>6}{'NCHW':>9}{'channels_last':>15}{'speed-up':>10}")
    for preset in args.presets.split(","):
        cfg = compose([f"experiment={preset}"] + args.overrides)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        steps = {layout: stepper(cfg, layout) for layout in (False, True)}
        for step in steps.values():
            for _ in range(min(10, args.steps)):
                step()
        times = {layout: [] for layout in steps}
        for repeat in range(args.repeats):
            for layout in steps if repeat % 2 == 0 else reversed(steps):
                times[layout].append(ms_per_step(steps[layout], args.steps))
        nchw, last = (statistics.median(times[layout]) for layout in (False, True))
        print(f"{preset:<14}{cfg.data.batch_size:>6}{nchw:>9.2f}{last:>15.2f}{nchw / last:>9.2f}x")


if __name__ == "__main__":
    main()
