"""Every run gets its own folder, also when several start in the same second; a run refused before training
leaves none."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

from mnistlab.runs.run_dir import claim_new_dir


def test_a_taken_folder_gets_a_suffix(tmp_path):
    base = str(tmp_path / "outputs" / "12-00-00")
    assert [claim_new_dir(base) for _ in range(3)] == [base, f"{base}-1", f"{base}-2"]


# A refused run's folder is removed when it holds only Hydra's .hydra/: these runs, refused after Hydra made their
# folders, keep Hydra's files in saved/ instead, so that the folders stay to be looked at
KEEP = "hydra.output_subdir=saved"


def start_together(tmp_path, run_dir: str, seeds: range) -> list:
    """train.py processes started at once; each fails its range check after Hydra made its folder."""
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "train.py"),
                f"hydra.run.dir={run_dir}",
                f"seed={seed}",
                "data.batch_size=0",
                KEEP,
            ],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for seed in seeds
    ]
    return [process.communicate(timeout=120) for process in processes]


def saved_seeds(folders) -> dict:
    return {folder.name: (folder / "saved" / "overrides.yaml").read_text() for folder in folders}


@pytest.mark.process
def test_runs_started_at_once_on_the_same_folder_name_get_one_folder_each(tmp_path):
    start_together(tmp_path, "${new_dir:outputs/same}", range(3))  # the default pattern, with a fixed time
    folders = sorted((tmp_path / "outputs").iterdir())
    assert [f.name for f in folders] == ["same", "same-1", "same-2"]
    overrides = saved_seeds(folders).values()
    assert sorted(next(line for line in text.splitlines() if "seed=" in line) for text in overrides) == [
        "- seed=0",
        "- seed=1",
        "- seed=2",
    ]  # each folder holds its own run's config


@pytest.mark.process
def test_the_default_run_folders_are_unique(tmp_path):
    for _ in range(2):
        processes = [
            subprocess.Popen(
                [sys.executable, str(ROOT / "train.py"), f"seed={seed}", "data.batch_size=0", KEEP],
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for seed in (0, 1)
        ]
        for process in processes:
            process.communicate(timeout=120)
    folders = [path.parent.parent for path in (tmp_path / "outputs").glob("*/*/saved/overrides.yaml")]
    assert len(folders) == 4 and len(set(folders)) == 4


def test_a_folder_left_with_only_hydras_files_is_removed_at_exit_with_the_parents_made_for_it(tmp_path):
    from mnistlab.runs import run_dir

    (tmp_path / "outputs").mkdir()
    refused, trained = (claim_new_dir(str(tmp_path / "outputs" / day / "12-00-00")) for day in ("day1", "day2"))
    for folder in (refused, trained):
        (Path(folder) / ".hydra").mkdir()
        (Path(folder) / ".hydra" / "config.yaml").write_text("seed: 1\n")
    (Path(trained) / "env.json").write_text("{}")  # written once training starts
    run_dir.discard_unused()  # what the process does at exit
    assert not run_dir.claimed
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "outputs",
        "outputs/day2",
        "outputs/day2/12-00-00",
        "outputs/day2/12-00-00/.hydra",
        "outputs/day2/12-00-00/.hydra/config.yaml",
        "outputs/day2/12-00-00/env.json",
    ]  # outputs/ was there before: it stays


OFFLINE = {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "no_proxy": ""}  # nothing there


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["trainer.max_epochs=-1"], "set trainer.max_steps"),
        (["data.data_dir=nowhere"], "MNIST not found: .* missing in nowhere/MNIST/raw/ and the download failed"),
        (["trainer.max_epochs=-1", "hydra.run.dir=runs/named"], "set trainer.max_steps"),  # and runs/ made for it
    ],
    ids=["max_epochs=-1", "no data, offline", "a named run folder"],
)
def test_a_run_refused_before_training_says_why_in_one_line_and_leaves_no_folder(arguments, message, tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *arguments, "threads=1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **OFFLINE},
    )
    assert result.returncode == 2 and result.stdout == "", result.stdout + result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ") and re.search(message, line), line
    assert list(tmp_path.iterdir()) == []  # no outputs/<date>/<time>/, no nowhere/MNIST/raw/, no runs/named/


def test_a_refused_run_leaves_a_named_folder_that_was_there_before(tmp_path):
    """Only a folder the run made is removed: one that existed (empty here) keeps what Hydra wrote into it."""
    (tmp_path / "named").mkdir()
    arguments = ["trainer.max_epochs=-1", "hydra.run.dir=named", "threads=1"]
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *arguments], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2 and "set trainer.max_steps" in result.stderr, result.stderr
    assert (tmp_path / "named" / ".hydra" / "config.yaml").is_file()
