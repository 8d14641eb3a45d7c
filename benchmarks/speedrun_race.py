"""The speedrun preset against tuomaso/train_mnist_fast's final script, whole process against whole process.

    git clone https://github.com/tuomaso/train_mnist_fast ../train_mnist_fast   # once, where online
    python -m venv ../mnistlab-env && ../mnistlab-env/bin/pip install -e .      # runtime dependencies only
    ../mnistlab-env/bin/python benchmarks/speedrun_race.py --reference ../train_mnist_fast \
        --data-dir <your MNIST folder>

Both programs run with the interpreter that runs this script. A user's `pip install -e .` has no torchvision
and no scipy; with the dev extras installed, torchmetrics imports both at every `import lightning`, which
lengthens train.py's start-up (docs/performance.md has the figures).

After one untimed run of each (`--warmup`: the first launch after other work reads torch's files from disk),
for each seed the two programs run one after the other (who goes first alternates), each as a fresh `python`
process timed from launch to exit:
  mnistlab   `python train.py experiment=speedrun seed=<seed> data.data_dir=...`: start-up, one epoch on the
             55,000 training images, validation, checkpoint, the test of the best checkpoint on 10,000 images.
  reference  the code cells of 8_Final_00s76.ipynb, run as a script: one epoch on all 60,000 training images,
             the test on 10,000. Left out: IPython's `%%time`/`%%timeit` lines, `from __future__` and the
             closing 30-run loop; `torch.manual_seed(<seed>)` goes first. Its data files (data/*.pt as the
             repository's data_saver.py writes them: ToTensor, Normalize(0.1307, 0.3081), the training set
             shuffled once) are made here from the same .gz files without torchvision, outside the timing,
             as the notebook's author timed it too.
Then the start-up of train.py: seconds from launch to the end of the first training step (beside a plain PyTorch
program's, benchmarks/plain_first_step.py: start-up's floor), and the imports
(`python -X importtime`) that take longest. Nothing is downloaded.
"""

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from processes import timed
from startup import first_step_times, plain_first_step_seconds  # benchmarks/, beside this file

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "8_Final_00s76.ipynb"
TARGET = 99.0


def reference_script(notebook: Path, seed: int) -> str:
    cells = json.loads(notebook.read_text())["cells"]
    code = ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"]
    kept = [cell for cell in code if "for i in range(30)" not in cell]  # the 30-run summary loop
    skip = ("%", "from __future__")  # IPython magics; a no-op import that must come first in a file
    lines = [line for cell in kept for line in cell.splitlines() if not line.lstrip().startswith(skip)]
    return f"import torch\ntorch.manual_seed({seed})\n" + "\n".join(lines) + "\n"


def prepare_reference_data(data_dir: Path, work: Path) -> None:
    """data/{train,test}_{data,labels}.pt as the repository's data_saver.py writes them."""
    import torch

    sys.path.insert(0, str(ROOT / "src"))
    from mnistlab.data.idx import read_idx

    raw = data_dir / "MNIST" / "raw"
    (work / "data").mkdir(parents=True, exist_ok=True)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(raw / f"{prefix}-images-idx3-ubyte.gz").float().div(255).sub(0.1307).div(0.3081)
        labels = read_idx(raw / f"{prefix}-labels-idx1-ubyte.gz").long()
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))  # DataLoader(shuffle=True)
        torch.save(images[order].unsqueeze(1).contiguous(), work / "data" / f"{split}_data.pt")
        torch.save(labels[order].contiguous(), work / "data" / f"{split}_labels.pt")


def run_mnistlab(seed: int, data_dir: Path, work: Path, extra: list) -> tuple:
    command = [sys.executable, str(ROOT / "train.py"), "experiment=speedrun", f"seed={seed}"]
    command += [f"data.data_dir={data_dir}", f"hydra.run.dir={work / f'mnistlab-{seed}'}", *extra]
    seconds, out, peak = timed(command, ROOT)
    return seconds, 100 * float(re.search(r"test/acc ([0-9.]+)", out).group(1)), peak


def run_reference(seed: int, notebook: Path, work: Path) -> tuple:
    script = work / f"reference-{seed}.py"
    script.write_text(reference_script(notebook, seed))
    seconds, out, peak = timed([sys.executable, str(script)], work)
    return seconds, float(out.strip().splitlines()[-1]), peak


def first_step_seconds(data_dir: Path, work: Path) -> float:
    """Launch to the end of the first training step of the speedrun."""
    return first_step_times(["experiment=speedrun", f"data.data_dir={data_dir}"], work)["first_step"]


NOTABLE = ("torchmetrics", "torchmetrics.functional", "torchvision", "torch._dynamo", "scipy.signal")


def slowest_imports() -> list:
    """(seconds, module): the imports of a training run, by cumulative import time, and the heavy
    packages they pull in (wherever they are first imported)."""
    code = "import hydra, omegaconf, torch, lightning, mnistlab.tasks.train, mnistlab.training.classifier"
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True)
    rows = []
    for line in result.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\s*)(\S+)", line)
        if match and int(match.group(1)) >= 50_000 and (not match.group(2) or match.group(3) in NOTABLE):
            rows.append((int(match.group(1)) / 1e6, match.group(3) if not match.group(2) else f"  {match.group(3)}"))
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference", type=Path, required=True, help="a clone of tuomaso/train_mnist_fast")
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="holds MNIST/raw/*.gz")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--startup-repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs of each program first (file caches)")
    parser.add_argument("overrides", nargs="*", help="extra train.py overrides for the mnistlab side")
    args = parser.parse_args(argv)
    notebook = args.reference / NOTEBOOK if args.reference.is_dir() else args.reference
    data_dir = args.data_dir.resolve()
    if not notebook.is_file():
        raise SystemExit(f"error: {notebook} not found: --reference takes a clone of tuomaso/train_mnist_fast")
    if not (data_dir / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").is_file():
        raise SystemExit(f"error: no MNIST/raw/*.gz under {data_dir}")

    with tempfile.TemporaryDirectory(prefix="mnistlab-race-") as tmp:
        work = Path(tmp)
        prepare_reference_data(data_dir, work)
        for _ in range(args.warmup):  # the first launch after other work reads torch's files from disk
            run_mnistlab(args.seeds[0], data_dir, work, args.overrides)
            run_reference(args.seeds[0], notebook, work)
        rows = []
        side = f"{'acc %':>6} {'peak MiB':>8}"
        print(f"{'seed':>4} | {'mnistlab s':>10} {side} | {'reference s':>11} {side}", flush=True)
        for i, seed in enumerate(args.seeds):
            ours_first = i % 2 == 0
            for side in ("mnistlab", "reference") if ours_first else ("reference", "mnistlab"):
                if side == "mnistlab":
                    ours = run_mnistlab(seed, data_dir, work, args.overrides)
                else:
                    theirs = run_reference(seed, notebook, work)
            rows.append((seed, *ours, *theirs))
            print(
                f"{seed:>4} | {ours[0]:>10.2f} {ours[1]:>6.2f} {ours[2]:>8.0f} | "
                f"{theirs[0]:>11.2f} {theirs[1]:>6.2f} {theirs[2]:>8.0f}",
                flush=True,
            )
        first_steps, floors = [], []
        for _ in range(args.startup_repeats):
            first_steps.append(first_step_seconds(data_dir, work))
            floors.append(plain_first_step_seconds(data_dir))

    ours_s, ours_acc, ours_mib = [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows]
    theirs_s, theirs_acc, theirs_mib = [r[4] for r in rows], [r[5] for r in rows], [r[6] for r in rows]
    ratios = [r[1] / r[4] for r in rows]
    print(
        f"\nmedian wall-clock: mnistlab {statistics.median(ours_s):.2f} s, "
        f"reference {statistics.median(theirs_s):.2f} s;"
        f" mnistlab/reference {statistics.median(ratios):.2f} (median of the per-seed ratios, "
        f"{min(ratios):.2f}-{max(ratios):.2f})"
    )
    for name, accs in (("mnistlab", ours_acc), ("reference", theirs_acc)):
        reached = sum(a >= TARGET for a in accs)
        print(
            f"{name}: {reached} of {len(accs)} seeds at {TARGET}% or more, mean {statistics.mean(accs):.2f}%,"
            f" min {min(accs):.2f}%"
        )
    print(
        f"peak resident memory (median): mnistlab {statistics.median(ours_mib):.0f} MiB, "
        f"reference {statistics.median(theirs_mib):.0f} MiB (each run's report.md names mnistlab's largest parts)"
    )
    print(
        f"\ntrain.py speedrun: launch to the end of the first training step {statistics.median(first_steps):.2f} s"
        f" (median of {len(first_steps)}); a plain PyTorch program's (benchmarks/plain_first_step.py)"
        f" {statistics.median(floors):.2f} s"
    )
    print("imports of train.py in order, cumulative s (indented: pulled in by the next one below):")
    for seconds, module in slowest_imports():
        print(f"  {seconds:6.2f}  {module}")


if __name__ == "__main__":
    main()
