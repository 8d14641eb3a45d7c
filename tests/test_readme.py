"""README.md's own commands, taken from its ```bash blocks and run as written, on the tests' synthetic MNIST and cut
to two training steps, so that the README cannot drift from the code. A command that cannot run here (several GPUs,
a cluster, a sweep) is composed and checked instead; one this file does not know fails the test until it is added."""

import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT, compose, quick_overrides, run_script
from helpers.tool_config import compose_tool
from omegaconf import OmegaConf
from PIL import Image

from mnistlab.settings.schema import validate

README = ROOT / "README.md"
CUT = ["trainer.max_steps=2"]  # after the README's own arguments and quick_overrides (synthetic data, quiet)
NOT_RUN = {  # program -> why the test leaves it out
    ("python", "-m", "pip"): "the install itself: .ci/run installs into a fresh environment",
    ("python", "-m", "pytest"): "the suite this test is part of",
    ("ruff",): "the lint: .ci/run runs it",
}
COMPOSED_ONLY = {  # a train.py argument -> why the command is composed and checked, not run
    "-m": "a sweep: tests/test_sweeps.py runs sweeps",
    "trainer=ddp": "several GPUs",
    "trainer=ddp_cpu": "several processes: tests/test_ddp.py runs them",
    "resume": "continues a stopped run: tests/test_resume.py",
    "--cfg": "prints the config, which composing it checks",
}


def readme_commands(text: str) -> list:
    """Each command line of the ```bash blocks, comments dropped, as the shell splits it; a placeholder such as
    <your MNIST folder> stays one word."""
    blocks = re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M)
    lines = [
        re.sub(r"<[^<>]*>", lambda m: m.group(0).replace(" ", "\0"), line) for b in blocks for line in b.splitlines()
    ]
    commands = [shlex.split(line, comments=True) for line in lines]
    unique = {tuple(token.replace("\0", " ") for token in tokens): None for tokens in commands if tokens}
    return [list(tokens) for tokens in unique]  # each once, in the README's order


COMMANDS = readme_commands(README.read_text())
FIRST_TRAIN = next(tokens for tokens in COMMANDS if tokens[:2] == ["python", "train.py"])


def substitute(tokens: list, places: dict) -> list:
    """The README's placeholders (outputs/<date>/<time>, <your MNIST folder>, ...) replaced by real paths."""
    out = []
    for token in tokens:
        for placeholder, value in places.items():
            token = token.replace(placeholder, str(value))
        out.append(token)
    return out


@pytest.fixture(scope="module")
def workspace(mnist_dir, tmp_path_factory) -> dict:
    """A folder to run the commands in: the README's first `python train.py` trained (its run stands for
    outputs/<date>/<time>), and a few pictures in scans/."""
    root = tmp_path_factory.mktemp("readme")
    places = {
        "outputs/multirun/<date>/<time>": root / "runs",  # compare.py: a folder of runs, as a sweep's is
        "outputs/<date>/<time>": root / "runs" / "first",
        "<your MNIST folder>": mnist_dir,
        "<run or sweep A>": root / "runs" / "first",
        "<run or sweep B>": root / "runs" / "second",
    }
    train_as_written(substitute(FIRST_TRAIN[2:], places), mnist_dir, root / "runs" / "first")
    train_as_written(["seed=1"], mnist_dir, root / "runs" / "second")  # compare.py A B
    (root / "scans").mkdir()
    for digit in range(3):
        pixels = np.zeros((28, 28), np.uint8)
        pixels[6:22, 12:16] = 255
        Image.fromarray(np.roll(pixels, digit * 3, axis=1)).save(root / "scans" / f"{digit}.png")
    return {"root": root, "places": places, "data": mnist_dir}


def train_as_written(arguments: list, data_dir: Path, run_dir: Path) -> dict:
    """train.py's task, in this process, with its config saved where Hydra saves it (eval.py and the rest read it)."""
    from mnistlab.tasks.train import train

    cfg = compose(arguments + quick_overrides(data_dir, run_dir) + CUT)
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create(arguments), run_dir / ".hydra" / "overrides.yaml")
    return train(cfg)


def grid(arguments: list) -> list:
    """The jobs of a sweep's arguments (`model=mlp,lstm lr=1e-3,3e-3`: four), as argument lists."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    jobs = [[]]
    for override in OverridesParser.create().parse_overrides(arguments):
        text = override.input_line
        values = list(override.sweep_string_iterator()) if override.is_sweep_override() else [override.value()]
        key = text.split("=", 1)[0]
        jobs = [
            job + ([f"{key}={value}"] if override.is_sweep_override() else [text]) for job in jobs for value in values
        ]
    return jobs


def test_the_readme_starts_with_commands_that_run_on_a_fresh_clone():
    text = README.read_text()
    assert FIRST_TRAIN == ["python", "train.py"]  # the data in data/ (downloaded or copied): no folder to name
    assert "../shared" not in text and "/work/" not in text  # paths of one machine only
    assert ["python", "-m", "mnistlab.tasks.report", "outputs/<date>/<time>"] in COMMANDS
    assert ["python", "-m", "pytest"] in COMMANDS


@pytest.mark.parametrize("tokens", COMMANDS, ids=[" ".join(tokens) for tokens in COMMANDS])
def test_readme_command(tokens, workspace, monkeypatch, tmp_path):
    from mnistlab.tasks import compare, report
    from mnistlab.tasks.evaluate import evaluate
    from mnistlab.tasks.export import export
    from mnistlab.tasks.predict import predict

    for program, reason in NOT_RUN.items():
        if tuple(tokens[: len(program)]) == program:
            pytest.skip(reason)
    monkeypatch.chdir(workspace["root"])  # relative paths (scans/, cmp/) as in a clone
    module = tokens[:2] == ["python", "-m"]
    script, arguments = (tokens[2], tokens[3:]) if module else (tokens[1], tokens[2:])
    arguments = substitute(arguments, workspace["places"])
    if script == "train.py":
        composed_only = [
            key for key in COMPOSED_ONLY if any(arg == key or arg.startswith(f"{key}=") for arg in arguments)
        ]
        if arguments == ["--help"]:
            result = run_script("train.py", "--help")
            assert result.returncode == 0 and "model: cnn, lstm, mlp, softmax" in result.stdout, result.stderr
        elif composed_only:
            for job in grid([arg for arg in arguments if arg not in ("-m", "--cfg", "job")]):
                validate(compose(job + quick_overrides(workspace["data"], tmp_path)))
        else:
            run_dir = workspace["root"] / "runs" / tmp_path.name  # beside the first: compare.py finds them all
            metrics = train_as_written(arguments, workspace["data"], run_dir)
            assert metrics["step"] == 2 and 0 <= metrics["test/acc"] <= 1
    elif script == "eval.py":
        arguments = [f"watch.enabled={a.split('=', 1)[1]}" if a.startswith("watch=") else a for a in arguments]
        assert 0 <= evaluate(compose_tool("eval", arguments + ["threads=1"]))["test/acc"] <= 1
    elif script == "predict.py":
        assert len(predict(compose_tool("predict", arguments + ["threads=1"]))) == 3
    elif script == "export.py":
        assert Path(export(compose_tool("export", arguments))["output"]).is_file()
    elif script == "compare.py":
        compare.main(arguments)
        if "--out" in arguments:
            assert (workspace["root"] / arguments[arguments.index("--out") + 1]).is_dir()
    elif script == "mnistlab.tasks.report":
        report.main(arguments)
        assert (Path(arguments[0]) / "report.png").is_file()
    else:
        pytest.fail(f"README.md runs `{' '.join(tokens)}`: add it to {Path(__file__).name}")
