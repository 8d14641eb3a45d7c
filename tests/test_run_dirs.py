"""Every run gets its own folder, also when several start in the same second."""

import subprocess
import sys

from helpers import ROOT

from mnistlab.runs.run_dir import claim_new_dir


def test_a_taken_folder_gets_a_suffix(tmp_path):
    base = str(tmp_path / "outputs" / "12-00-00")
    assert [claim_new_dir(base) for _ in range(3)] == [base, f"{base}-1", f"{base}-2"]


def start_together(tmp_path, run_dir: str, seeds: range) -> list:
    """train.py processes started at once; each fails its range check after Hydra made its folder."""
    processes = [
        subprocess.Popen(
            [sys.executable, str(ROOT / "train.py"), f"hydra.run.dir={run_dir}", f"seed={seed}", "data.batch_size=0"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for seed in seeds
    ]
    return [process.communicate(timeout=120) for process in processes]


def saved_seeds(folders) -> dict:
    return {folder.name: (folder / ".hydra" / "overrides.yaml").read_text() for folder in folders}


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


def test_the_default_run_folders_are_unique(tmp_path):
    for _ in range(2):
        processes = [
            subprocess.Popen(
                [sys.executable, str(ROOT / "train.py"), f"seed={seed}", "data.batch_size=0"],
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for seed in (0, 1)
        ]
        for process in processes:
            process.communicate(timeout=120)
    folders = [path.parent.parent for path in (tmp_path / "outputs").glob("*/*/.hydra/overrides.yaml")]
    assert len(folders) == 4 and len(set(folders)) == 4
