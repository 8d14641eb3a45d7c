"""DDP: one run in two CPU processes (gloo) under torchrun, Lightning's own launcher, submitit and srun."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import (
    ROOT,
    TEST_FILES,
    TRAIN_FILES,
    quick_overrides,
    run_script,
    stand_in_slurm,
    synthetic_digits,
    write_idx,
)

from mnistlab.data.batches import TensorBatches

VAL, TRAIN, TEST = 101, 399, 201  # odd: the two processes' halves of each split differ by one image
STEPS_PER_EPOCH = 7  # each process trains on 199 images an epoch, in batches of 32 (one process alone: 13 steps)


@pytest.fixture(scope="module")
def odd_mnist(tmp_path_factory) -> Path:
    data_dir = tmp_path_factory.mktemp("odd_mnist")
    raw = data_dir / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for files, n, seed in ((TRAIN_FILES, VAL + TRAIN, 0), (TEST_FILES, TEST, 1)):
        images, labels = synthetic_digits(n, seed)
        write_idx(raw / files[0], images)
        write_idx(raw / files[1], labels)
    return data_dir


def ddp_overrides(data_dir: Path) -> list:
    """Softmax at a low learning rate (far from 100% right on the test images), evaluated in batches of 25:
    the two processes run different numbers of evaluation batches."""
    return [o for o in quick_overrides(data_dir, "unused") if not o.startswith("paths.")] + [
        "trainer=ddp_cpu",
        "model=softmax",
        "optimizer.lr=1e-3",
        f"data.val_size={VAL}",
        "data.eval_batch_size=25",
        "seed=0",
    ]


def shards(size: int, world_size: int, batch_size: int, shuffle: bool, epoch: int = 0) -> list:
    """The image indices each rank sees in one epoch."""
    indices = torch.arange(size)
    seen = []
    for rank in range(world_size):
        batches = TensorBatches(indices, indices, batch_size, shuffle, seed=3, rank=rank, world_size=world_size)
        if shuffle:
            batches.sampler.set_epoch(epoch)
        seen.append(torch.cat([labels for _, labels in batches]).tolist())
    return seen


@pytest.mark.parametrize("world_size", [2, 3])
def test_each_rank_trains_on_its_own_part_of_every_epoch(world_size):
    for epoch in (0, 1):
        parts = shards(TRAIN, world_size, 32, shuffle=True, epoch=epoch)
        assert len({len(part) for part in parts}) == 1  # the same number of batches: no rank waits for another
        seen = [index for part in parts for index in part]
        assert len(seen) == len(set(seen)) == TRAIN - TRAIN % world_size  # disjoint; at most world_size - 1 left out
    assert shards(TRAIN, world_size, 32, True, epoch=0) != shards(TRAIN, world_size, 32, True, epoch=1)
    evaluated = [index for part in shards(VAL, world_size, 25, shuffle=False) for index in part]
    assert evaluated == list(range(VAL))  # evaluation: every image once, in order, shards of unequal sizes


def event_file_pids(run_dir: Path) -> set:
    return {path.name.split(".")[-2] for path in (run_dir / "tensorboard").glob("events.out.tfevents.*")}


@pytest.mark.process
def test_torchrun_run_resumed_by_lightnings_launcher_then_evaluated_in_one_process(odd_mnist, tmp_path):
    run_dir = tmp_path / "run"
    # the run folder is claimed by rank 0 (new_dir) and handed to rank 1 through torchrun's store
    first = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "train.py",
            *ddp_overrides(odd_mnist),
            f"hydra.run.dir=${{new_dir:'{run_dir}'}}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert first.returncode == 0, first.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # one folder for both processes
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["step"] == STEPS_PER_EPOCH  # each process trained on its half
    assert first.stdout.count("test/acc ") == 1  # one summary, from rank 0
    log = (run_dir / "train.log").read_text()
    assert "GLOBAL_RANK: 0" in log and "GLOBAL_RANK: 1" not in log  # rank 0's log only
    assert len(event_file_pids(run_dir)) == 1
    assert (run_dir / "checkpoints" / "last.ckpt").exists()

    resumed = run_script("train.py", f"resume={run_dir}", "trainer.max_epochs=2")  # Lightning starts rank 1
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["step"] == 2 * STEPS_PER_EPOCH
    assert sorted(p.name for p in run_dir.glob("*.log")) == ["train.log"]  # no train_ddp_process_1.log
    assert len(event_file_pids(run_dir)) == 2  # one process of each run wrote curves
    assert 0.3 < metrics["test/acc"] < 1.0  # not a trivial 0 or 1

    evaluated = run_script("eval.py", f"ckpt_path={run_dir}", f"output={tmp_path / 'eval.json'}", "threads=1")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    one_process = json.loads((tmp_path / "eval.json").read_text())
    assert one_process["test/acc"] == metrics["test/acc"]  # every test image counted once, by either process
    assert abs(one_process["test/loss"] - metrics["test/loss"]) < 1e-6


@pytest.mark.process
def test_sweep_of_ddp_jobs_is_refused_in_one_line(odd_mnist, tmp_path):
    result = run_script("train.py", "-m", *ddp_overrides(odd_mnist), "seed=1,2", f"hydra.sweep.dir={tmp_path}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: -m with trainer.devices=2: Lightning would start the other processes by running the whole sweep "
        "again; for a sweep of DDP jobs use hydra/launcher=slurm with hydra.launcher.tasks_per_node=<devices> "
        "(README: Several devices), or run each job as its own torchrun command without -m"
    )
    assert not list(tmp_path.glob("*/metrics.json"))

    torchrun_rank = {**os.environ, "TORCHELASTIC_RUN_ID": "x", "RANK": "0", "WORLD_SIZE": "2"}
    under_torchrun = subprocess.run(
        [sys.executable, "train.py", "-m", "model=softmax"],
        cwd=ROOT,
        env=torchrun_rank,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert under_torchrun.returncode == 2
    assert under_torchrun.stderr.startswith("error: -m under torchrun or srun would run the whole sweep in every")


@pytest.mark.process
def test_submitit_runs_a_ddp_job_as_one_task_per_process(odd_mnist, tmp_path):
    sweep = tmp_path / "sweep"
    result = run_script(
        "train.py",
        "-m",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=5",
        "hydra.launcher.tasks_per_node=2",
        *ddp_overrides(odd_mnist),
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((sweep / "0" / "job.json").read_text())
    assert record["status"] == "ok" and record["metrics"]["step"] == STEPS_PER_EPOCH
    assert "GLOBAL_RANK: 1" not in (sweep / "0" / "train.log").read_text()


def test_slurm_jobs_get_one_task_per_device(tmp_path):
    """No cluster here: stand-ins for srun and sbatch; sbatch keeps the script it is given and refuses it."""
    env, script = stand_in_slurm(tmp_path)
    subprocess.run(
        [
            sys.executable,
            "train.py",
            "-m",
            "hydra/launcher=slurm",
            "trainer=ddp",
            "trainer.devices=4",
            "trainer.num_nodes=2",
            "model=softmax",
            "optimizer.lr=0.01,0.1",
            f"hydra.sweep.dir={tmp_path}/s",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = set(script.read_text().splitlines())
    assert {"#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4", "#SBATCH --gpus-per-node=4"} <= lines


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.process
def test_srun_tasks_share_the_run_folder_rank_zero_claimed(tmp_path):
    """Two processes with the variables srun gives two tasks of one step; rank 0 serves the store where
    Lightning's will be (SLURM_NODELIST, MASTER_PORT)."""
    resolve = (
        "from pathlib import Path; from omegaconf import OmegaConf; "
        "from mnistlab.runs.run_dir import register_resolvers; register_resolvers(); "
        f"folder = OmegaConf.create({{'dir': '${{new_dir:{tmp_path}/run}}'}}).dir; print(folder); "
        "Path(folder, 'results').touch()"  # a run that wrote results: its folder is kept at exit
    )
    slurm = {
        "SLURM_NTASKS": "2",
        "SLURM_NTASKS_PER_NODE": "2",
        "SLURM_JOB_NAME": "train",
        "SLURM_JOB_ID": "4242",
        "SLURM_NODELIST": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
    }
    tasks = [
        subprocess.Popen(
            [sys.executable, "-c", resolve],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, **slurm, "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank)},
        )
        for rank in (1, 0)
    ]  # rank 1 first: it waits for rank 0
    outputs = [task.communicate(timeout=120)[0].strip() for task in tasks]
    assert outputs == [str(tmp_path / "run")] * 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_every_rank_cuts_its_batches_from_rank_zeros_seed(odd_mnist):
    """seed=null draws a seed in each process: rank 0's is the one all use, so their shards stay disjoint."""
    from types import SimpleNamespace

    from mnistlab.data.mnist import MNISTDataModule

    datamodule = MNISTDataModule(str(odd_mnist), val_size=VAL, download=False, seed=None)
    datamodule.trainer = SimpleNamespace(
        strategy=SimpleNamespace(root_device=torch.device("cpu"), broadcast=lambda value: 1234)
    )
    datamodule.setup("fit")
    assert datamodule.seed == 1234


@pytest.mark.slow
def test_ddp_benchmark_times_both_setups(mnist_dir):
    result = run_script(
        "benchmarks/ddp.py",
        f"data.data_dir={mnist_dir}",
        "data.val_size=100",
        "threads=1",
        "--steps",
        "3",
        "--repeats",
        "1",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["trainer=cpu", "trainer=ddp_cpu"]
