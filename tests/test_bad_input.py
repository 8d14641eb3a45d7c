"""Every entry point answers bad input the same way: one `error:` line, a non-zero exit, no traceback, and an
earlier run's files left as they were, byte for byte.

The cases run in-process, through each entry point's `__main__` path, in the worker that the attack tables share
(tests/helpers/attack.py; tests/test_received_files.py checks it answers as a real process does); tests/test_cli.py
runs the command-line exit codes in processes of their own."""

import gzip
import hashlib
import shutil
from pathlib import Path

import pytest
import torch
from helpers import TRAIN_FILES, attack

TRAIN, EVAL, PREDICT, EXPORT = "train.py", "eval.py", "predict.py", "export.py"
BENCHMARK, SUMMARY = "benchmarks/throughput.py", "summary"  # summary: python -m mnistlab.tasks.summary

# (entry point, arguments): {run} is a finished mlp run, {data} good data, {tmp} an empty folder, {file} a text
# file; the other names are files made in `places` below.
CASES = [
    # wrong types, out-of-range numbers
    (TRAIN, "data.batch_size=0"),
    (TRAIN, "data.batch_size=abc"),
    (TRAIN, "optimizer.lr=-1"),
    (TRAIN, "trainer.max_epochs=many"),
    (TRAIN, "seed=abc"),
    (TRAIN, "threads=0"),
    (TRAIN, "ema.decay=2"),
    (TRAIN, "model=mlp model.net.hidden=[0]"),
    (TRAIN, "data.val_size=100000 data.data_dir={data}"),
    (TRAIN, "trainer.precision=banana data.data_dir={data}"),
    (TRAIN, "trainer.accelerator=nonsense data.data_dir={data}"),
    # unknown groups and keys
    (TRAIN, "model=foo"),
    (TRAIN, "scheduler=nope"),
    (TRAIN, "experiment=nope"),
    (TRAIN, "model.no_such_key=1"),
    (TRAIN, "+trainer.no_such_argument=1 data.data_dir={data}"),
    # data: missing, a file, damaged, truncated
    (TRAIN, "data.data_dir={tmp}/missing data.download=false"),
    (TRAIN, "data.data_dir={file}"),
    (TRAIN, "data.data_dir={damaged_gz}"),
    (TRAIN, "data.data_dir={truncated_idx}"),
    (TRAIN, "data.data_dir={not_idx}"),
    # output folders that cannot be made
    (TRAIN, "hydra.run.dir={file}/run data.data_dir={data}"),
    # checkpoints: missing, not one, damaged, foreign, another architecture, spent, wrong resume
    (TRAIN, "ckpt_path={tmp}/missing.ckpt data.data_dir={data}"),
    (TRAIN, "ckpt_path={file} data.data_dir={data}"),
    (TRAIN, "ckpt_path={truncated_ckpt} data.data_dir={data}"),
    (TRAIN, "ckpt_path={foreign_ckpt} data.data_dir={data}"),
    (TRAIN, "ckpt_path={moved_ckpt} model=cnn data.data_dir={data}"),
    (TRAIN, "ckpt_path={moved_ckpt} model=mlp model.net.hidden=[7] data.data_dir={data}"),
    (TRAIN, "resume={tmp}"),
    (TRAIN, "resume={run} trainer.max_epochs=1"),
    (TRAIN, "resume={run} trainer.max_epochs=-1 trainer.max_steps=2"),
    (TRAIN, "resume={run} model=cnn"),
    (TRAIN, "-m resume={run}"),
    (EVAL, ""),
    (EVAL, "ckpt_path={tmp}/missing.ckpt"),
    (EVAL, "ckpt_path={tmp}"),
    (EVAL, "ckpt_path={file}"),
    (EVAL, "ckpt_path={truncated_ckpt}"),
    (EVAL, "ckpt_path={foreign_ckpt}"),
    (EVAL, "ckpt_path={bare_lightning_ckpt}"),
    (EVAL, "ckpt_path={run} split=train"),
    (EVAL, "ckpt_path={run} data.data_dir={file}"),
    (EVAL, "ckpt_path={run} data.data_dir={tmp}/missing"),
    (EVAL, "ckpt_path={run} output={file}/metrics.json"),
    (EVAL, "ckpt_path={run} data_dir={data}"),
    (EVAL, "ckpt_path={tmp} watch=true"),
    (EVAL, "ckpt_path={run} watch=true watch.interval=-1"),
    (PREDICT, "ckpt_path={run} images={tmp}/none-*.png"),
    (PREDICT, "ckpt_path={run} images={file}"),
    (PREDICT, "ckpt_path={run} images={file} top_k=11"),
    (PREDICT, "ckpt_path={file} images={file}"),
    (EXPORT, "ckpt_path={run} format=pdf"),
    (EXPORT, "ckpt_path={truncated_ckpt}"),
    (EXPORT, "ckpt_path={run} output={file}/model.pt"),
    (EXPORT, "ckpt_path={run} check_images=0"),
    (BENCHMARK, "--quick --models nope"),
    (BENCHMARK, "--quick data.batch_size=0"),
    (SUMMARY, "{tmp}/missing"),
    (SUMMARY, "{file}"),
]


def gz(path: Path, data: bytes) -> None:
    with gzip.open(path, "wb") as f:
        f.write(data)


def broken_data(root: Path, good: Path, name: str, damage) -> Path:
    """A copy of the good data with its training images damaged by `damage(path)`."""
    shutil.copytree(good, root / name)
    damage(root / name / "MNIST" / "raw" / TRAIN_FILES[0])
    return root / name


@pytest.fixture(scope="module")
def worker(tmp_path_factory) -> attack.Worker:
    return attack.shared_worker(tmp_path_factory.getbasetemp() / "attack-logs")


@pytest.fixture(scope="module")
def places(tmp_path_factory, mnist_dir, worker) -> dict:
    """A finished mlp run (the attack tables' real run: model.net.hidden=[16], 3 steps) and crafted inputs."""
    root = tmp_path_factory.mktemp("bad-input")
    data = mnist_dir
    run = attack.base_artifacts(tmp_path_factory.getbasetemp(), mnist_dir, worker).run
    (root / "empty").mkdir()
    (root / "notes.txt").write_text("not a checkpoint, not a folder, not an image\n")
    [ckpt] = (run / "checkpoints").glob("epoch*.ckpt")
    shutil.copy(ckpt, root / "moved.ckpt")  # outside its run: a new run from it, with the command line's model
    (root / "truncated.ckpt").write_bytes(ckpt.read_bytes()[:2000])
    torch.save({"weights": torch.zeros(3)}, root / "foreign.ckpt")
    torch.save({"state_dict": {"w": torch.zeros(3)}, "global_step": 1}, root / "bare.ckpt")
    return {
        "run": run,
        "data": data,
        "tmp": root / "empty",
        "file": root / "notes.txt",
        "moved_ckpt": root / "moved.ckpt",
        "truncated_ckpt": root / "truncated.ckpt",
        "foreign_ckpt": root / "foreign.ckpt",
        "bare_lightning_ckpt": root / "bare.ckpt",
        "damaged_gz": broken_data(root, data, "damaged-gz", lambda p: p.write_bytes(p.read_bytes()[:300])),
        "truncated_idx": broken_data(
            root, data, "truncated-idx", lambda p: gz(p, gzip.decompress(p.read_bytes())[:5000])
        ),
        "not_idx": broken_data(root, data, "not-idx", lambda p: gz(p, b"<html>offline</html>")),
    }


def fingerprint(folder: Path) -> dict:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_the_table_is_large_and_covers_every_entry_point():
    assert len(CASES) >= 40
    assert {script for script, _ in CASES} == {TRAIN, EVAL, PREDICT, EXPORT, BENCHMARK, SUMMARY}


def run_case(case: tuple, places: dict, worker: attack.Worker, work: Path) -> tuple:
    """Runs one case in its own folder, against its own copy of the earlier run: (result, run before, run after)."""
    script, arguments = case
    work.mkdir()
    run = shutil.copytree(places["run"], work / "run", symlinks=True)
    before = fingerprint(run)
    args = [arg.format(**{**places, "run": run}) for arg in arguments.split()]
    args += ["threads=1"] if script == TRAIN else []
    job = attack.plain_job(script, args, work, work / "capture", timeout=120)  # outputs/ land in work
    return worker.run(job), before, fingerprint(run)


@pytest.fixture(scope="module")
def outcomes(places, worker, request, tmp_path_factory) -> dict:
    """The selected cases, one after another in the worker."""
    selected = (
        attack.selected(request, "test_bad_input_gets_one_line", "script"),
        attack.selected(request, "test_bad_input_gets_one_line", "arguments"),
    )
    root = tmp_path_factory.mktemp("cases")
    return {case: run_case(case, places, worker, root / str(n)) for n, case in enumerate(zip(*selected))}


@pytest.mark.parametrize("script, arguments", CASES, ids=[f"{s.split('/')[-1]} {a}" for s, a in CASES])
def test_bad_input_gets_one_line(script, arguments, outcomes):
    result, before, after = outcomes[(script, arguments)]
    output = f"{result.get('crash') or ''}{result['stdout']}{result['stderr']}"
    assert result["rc"] not in (0, None), output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    last = result["stderr"].strip().splitlines()[-1] if result["stderr"].strip() else ""
    assert last.startswith("error: "), output[-3000:]
    assert after == before  # nothing of the earlier run changed
