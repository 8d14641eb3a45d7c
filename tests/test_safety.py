"""Checkpoints load weights-only: a file crafted to run code when unpickled is refused, and runs nothing.
And a checkpoint or saved run config is data: what it names to build is bounded (mnistlab.settings.targets)."""

import os
import re
import shutil
import subprocess
import sys
import types
import uuid
from pathlib import Path

import pytest
import torch
from helpers import CONF, ROOT, compose, quick_overrides, run_script
from helpers.tool_config import compose_tool, train_run
from omegaconf import OmegaConf

from mnistlab.errors import CheckpointError, UnsafeConfigError, UserError
from mnistlab.runs.checkpoints import best_checkpoint, latest_checkpoint, load_checkpoint, load_classifier
from mnistlab.settings.targets import check_targets
from mnistlab.tasks.train import train


class CreatesMarker:
    """Unpickling this calls os.system: it would create `path`."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return os.system, (f"touch {self.path}",)


@pytest.fixture
def malicious(tmp_path):
    marker = tmp_path / "code-was-run"
    path = tmp_path / "run" / "checkpoints" / "last.ckpt"  # inside a run directory, as a real one
    path.parent.mkdir(parents=True)
    (tmp_path / "run" / ".hydra").mkdir()
    (tmp_path / "run" / ".hydra" / "config.yaml").write_text("seed: 0\n")
    torch.save({"state_dict": {}, "global_step": 1, "hyper_parameters": CreatesMarker(marker)}, path)
    return path, marker


def test_the_crafted_file_really_runs_code_without_weights_only(malicious):
    path, marker = malicious
    torch.load(path, weights_only=False)  # what an unsafe loader would do: the control for the tests below
    assert marker.exists()


def test_malicious_checkpoint_is_refused_in_process(malicious):
    path, marker = malicious
    with pytest.raises(CheckpointError, match=r"refused: .*GLOBAL posix.system.* Nothing in it was run"):
        load_checkpoint(path)
    assert latest_checkpoint(path.parent.parent) is None  # not a usable checkpoint either
    assert not marker.exists()


def test_export_and_predict_refuse_it(malicious):
    from mnistlab.tasks.export import export
    from mnistlab.tasks.predict import predict

    path, marker = malicious
    for task, config in (
        (export, compose_tool("export", [f"ckpt_path={path}", "format=onnx"])),
        (predict, compose_tool("predict", [f"ckpt_path={path}", f"images={path}"])),
    ):
        with pytest.raises(CheckpointError, match="refused"):
            task(config)
    assert not marker.exists()


@pytest.mark.parametrize("command", [["eval.py", "ckpt_path={ckpt}"], ["train.py", "ckpt_path={ckpt}"]])
@pytest.mark.process
def test_the_scripts_refuse_it_with_one_line(command, malicious):
    path, marker = malicious
    result = run_script(*[arg.format(ckpt=path) for arg in command])
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path} refused"), result.stderr[-2000:]
    assert not marker.exists()


def test_damaged_checkpoint_gets_a_clear_message(tmp_path):
    path = tmp_path / "half.ckpt"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(path)
    pickle_path = tmp_path / "plain.ckpt"
    torch.save({"weights": torch.zeros(2)}, pickle_path)
    with pytest.raises(CheckpointError, match="not a Lightning checkpoint"):
        load_checkpoint(pickle_path)


def test_best_is_what_train_tested_and_last_is_the_newest(mnist_dir, tmp_path):
    # the "best" by the highest val/loss: the first epoch's, so that it is not also the newest
    metrics = train(
        compose(
            quick_overrides(mnist_dir, tmp_path)
            + ["model=softmax", "trainer.max_epochs=3", "callbacks.checkpoint.monitor=val/loss"]
        )
    )
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["epoch000-step000016.ckpt", "last.ckpt"]
    assert best_checkpoint(tmp_path).name == "epoch000-step000016.ckpt"
    assert latest_checkpoint(tmp_path).name == "last.ckpt"
    assert load_checkpoint(tmp_path / "checkpoints" / "last.ckpt")["global_step"] == metrics["step"] == 48


# ---------------------------------------------------------------------------------------------------
# A checkpoint (or a run's saved config) is data: what it names to build is bounded (mnistlab.settings.targets).
# The files below load cleanly with weights_only=True; only their hyperparameters name something else.


class Bait:
    """What a refused file must leave alone: a file of the user's (must not change) and a path that
    running or importing the named code would create; plus a pickle whose loading runs code, and a
    module whose mere import creates that path."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.existing, self.created = folder / "precious.txt", folder / "code-was-run"
        self.existing.write_text("original\n")
        self.pickle = folder / "second.pt"
        torch.save(CreatesMarker(self.created), self.pickle)
        self.folder, self.module = folder, f"bait_{uuid.uuid4().hex[:8]}"
        (folder / f"{self.module}.py").write_text(
            f"from pathlib import Path\nPath({str(self.created)!r}).write_text('imported')\n"
            "from torch import nn\n\n\nclass Net(nn.Linear):\n    def __init__(self, **unused):\n"
            "        super().__init__(784, 10)\n"
        )

    def assert_untouched(self):
        assert self.existing.read_bytes() == b"original\n", "a file of the user's was changed"
        assert not self.created.exists(), "the checkpoint ran code"


def open_for_writing(bait):
    return {"_target_": "builtins.open", "file": str(bait.existing), "mode": "w"}


def load_second_file(bait, target="torch.load"):
    return {"_target_": target, "f": str(bait.pickle), "weights_only": False}


# name: (hyperparameters replaced in the checkpoint, what the one-line refusal names)
PAYLOADS = {
    "open-w": (lambda b: {"net": open_for_writing(b)}, "builtins.open"),
    "positional-args": (
        lambda b: {"net": {"_target_": "builtins.open", "_args_": [str(b.existing), "w"]}},
        "builtins.open",
    ),
    "os-system": (lambda b: {"net": {"_target_": "os.system", "_args_": [f"touch {b.created}"]}}, "os.system"),
    "torch-load": (lambda b: {"net": load_second_file(b)}, "torch.load"),
    "nested": (
        lambda b: {"net": {"_target_": "mnistlab.models.mlp.MLP", "hidden": [open_for_writing(b)]}},
        "net.hidden[0]._target_='builtins.open'",
    ),
    "attribute-chain": (
        lambda b: {
            "net": {
                "_target_": "mnistlab.models.mlp.nn.modules.module.torch.save",
                "obj": "overwritten",
                "f": str(b.existing),
            }
        },
        "mnistlab.models.mlp.nn.modules.module.torch.save",
    ),
    "interpolation": (
        lambda b: {
            "net": {
                "_target_": "mnistlab.models.mlp.MLP",
                "hidden": "${oc.create:{_target_: builtins.open, file: '%s', mode: w}}" % b.existing,
            }
        },
        "${oc.create:",
    ),
    "import-time": (lambda b: {"net": {"_target_": f"{b.module}.Net"}}, "net._target_='bait_"),
    "optimizer": (
        lambda b: {"optimizer": load_second_file(b, "torch.optim.adam.torch.load")},
        "optimizer._target_='torch.optim.adam.torch.load'",
    ),
    "scheduler": (lambda b: {"scheduler": open_for_writing(b)}, "scheduler._target_='builtins.open'"),
    "trusts-itself": (lambda b: {"trusted_modules": ["builtins"], "net": open_for_writing(b)}, "trusted_modules"),
}


@pytest.fixture(scope="module")
def real_run(mnist_dir, tmp_path_factory):
    """A real run of train.py (softmax, one epoch): what the crafted files are copies of."""
    run_dir = tmp_path_factory.mktemp("real-run")
    train_run(mnist_dir, run_dir, ["model=softmax", "report=false"])
    return run_dir


def craft(real_run, dest: Path, hparams: dict = None, config: dict = None) -> Path:
    """A copy of `real_run` whose checkpoints' hyperparameters (and saved config) get `hparams` (`config`)."""
    shutil.copytree(real_run, dest)
    for path in (dest / "checkpoints").glob("*.ckpt"):
        checkpoint = torch.load(path, weights_only=True)
        checkpoint["hyper_parameters"].update(hparams or {})
        torch.save(checkpoint, path)
        load_checkpoint(path)  # still a plain, weights-only checkpoint
    saved = OmegaConf.load(dest / ".hydra" / "config.yaml")
    saved.paths.output_dir = str(dest)  # a run that got through would write here, not into real_run
    for key, value in (config or {}).items():
        OmegaConf.update(saved, key, value, merge=False, force_add=True)
    OmegaConf.save(saved, dest / ".hydra" / "config.yaml")
    return dest


@pytest.mark.parametrize("payload", PAYLOADS)
def test_load_classifier_refuses_what_a_checkpoint_may_not_build(payload, real_run, tmp_path, monkeypatch):
    bait = Bait(tmp_path / "bait")
    monkeypatch.syspath_prepend(str(bait.folder))  # the import-time module could be imported
    hparams, named = PAYLOADS[payload]
    path = craft(real_run, tmp_path / "run", hparams(bait)) / "checkpoints" / "last.ckpt"
    try:
        model, _ = load_classifier(path)
        model.configure_optimizers()  # what training would build next (a scheduler needs a trainer)
    except Exception as err:  # the check, or whatever a payload let through breaks further on
        error = err
    else:
        error = None
    bait.assert_untouched()
    assert bait.module not in sys.modules
    assert isinstance(error, UserError), repr(error)
    message = str(error)
    assert "\n" not in message and message.startswith(str(path)) and named in message and "refused" in message


@pytest.mark.parametrize(
    "target",
    [
        "builtins.open",
        "torch.load",
        "torch.optim.adam.torch.load",
        "mnistlab.models.mlp.nn.modules.module.torch.save",
        "mnistlab.models.cnn.nn",
        "mnistlab.models.cnn.Sequence",
        "mnistlab.models.cnn",
        "mnistlab.training.schedulers.LambdaLR",
        "mnistlab.training.schedulers.math",
        "torch.optim.lr_scheduler.LambdaLR",
        "lightning.pytorch.seed_everything",
        "lightning.pytorch.callbacks.ModelCheckpoint.__init__",
        "mnistlab.models.mlp.MLP ",
        "MLP",
        42,
    ],
)
def test_lookalike_targets_are_refused(target):
    """Exact module names, then the kind of object: no prefix or attribute chain gets through."""
    with pytest.raises(UnsafeConfigError, match="refused to build x._target_="):
        check_targets({"x": {"_target_": target}}, source="f.ckpt", run_config=True)


def test_a_trusted_module_allows_only_what_it_defines(tmp_path, monkeypatch):
    module = f"mine_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(
        "import os\nfrom os import system\nfrom torch import nn\n\n\nclass Net(nn.Module):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    check_targets({"model": {"_target_": f"{module}.Net"}}, [module])
    for target in (f"{module}.system", f"{module}.os.system", f"{module}.nn.Module"):  # imported there, not its own
        with pytest.raises(UnsafeConfigError, match=f"refused to build model._target_='{target}'"):
            check_targets({"model": {"_target_": target}}, [module])
    with pytest.raises(UnsafeConfigError, match="neither allowed nor trusted"):
        check_targets({"model": {"_target_": f"{module}.Net"}}, [module[:-1]])  # a prefix of a name is not it


def test_every_target_in_conf_is_allowed():
    """conf/ builds only allowed targets, so a resumed run's saved config always passes (hydra/ is Hydra's own
    and not saved with the run). A new callback or logger module of ours must be added to targets.run_rules."""
    found = {}
    for path in CONF.rglob("*.yaml"):
        if "hydra" not in path.relative_to(CONF).parts:
            for indent, target in re.findall(r"^( *)_target_: *(\S+)", path.read_text(), re.MULTILINE):
                group = path.relative_to(CONF).parts[0]
                found[target] = "net" if group == "model" and indent else group  # model.net._target_: a network
    assert len(found) >= 17, found
    assert found["mnistlab.training.classifier.Classifier"] == "model"
    assert found["mnistlab.data.mnist.MNISTDataModule"] == "data"
    for target, group in found.items():
        check_targets({"x": {"_target_": target}}, source=target, run_config=True)
        if group in ("net", "optimizer", "scheduler"):
            check_targets({"x": {"_target_": target}}, source=target)  # what a Classifier builds (checkpoints)
        else:  # nor may a checkpoint's hyperparameters name the data module or a Classifier
            with pytest.raises(UnsafeConfigError):
                check_targets({"x": {"_target_": target}}, source=target)


def script(*args, env_path: Path = None, **env) -> subprocess.CompletedProcess:
    """python <args> in the project root, with this tree's src/ and `env_path` on PYTHONPATH."""
    extra = {"PYTHONPATH": os.pathsep.join(str(path) for path in (ROOT / "src", env_path) if path)}
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **extra, **env},
    )


def assert_refused(result, *named):
    assert result.returncode == 2, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "refused" in last and all(n in last for n in named), result.stderr[-3000:]
    assert "Traceback" not in result.stderr


# entry point: (payload in the checkpoints, payload in the saved config, command)
ENTRY_POINTS = {
    "eval": ("open-w", None, lambda run, tmp, data: ["eval.py", f"ckpt_path={run}"]),
    "eval-watch": (
        "nested",
        None,
        lambda run, tmp, data: ["eval.py", f"ckpt_path={run}", "watch=true", "watch.interval=0.1", "watch.timeout=30"],
    ),
    "predict": (
        "torch-load",
        None,
        lambda run, tmp, data: ["predict.py", f"ckpt_path={run}/checkpoints/last.ckpt", f"images={tmp}/digit.png"],
    ),
    "export": ("attribute-chain", None, lambda run, tmp, data: ["export.py", f"ckpt_path={run}/checkpoints/last.ckpt"]),
    # a checkpoint from elsewhere: trained on from this command line's config, its own is checked all the same
    "train-standalone-ckpt": (
        "optimizer",
        None,
        lambda run, tmp, data: [
            "train.py",
            f"ckpt_path={shutil.copy(run / 'checkpoints' / 'last.ckpt', tmp / 'downloaded.ckpt')}",
            *quick_overrides(data, tmp / "new-run"),
            "model=softmax",
            "trainer.max_epochs=2",
            f"hydra.run.dir={tmp}/new-run",
        ],
    ),
    # a checkpoint in its run directory, and resume=: the run's saved config is what gets built
    "train-ckpt-in-run": (
        None,
        {"scheduler": "open-w"},
        lambda run, tmp, data: ["train.py", f"ckpt_path={run}/checkpoints/last.ckpt", "trainer.max_epochs=2"],
    ),
    "train-resume": (
        None,
        {"callbacks.evil": "torch-load"},
        lambda run, tmp, data: ["train.py", f"resume={run}", "trainer.max_epochs=2"],
    ),
    # the data module (and the Classifier) come from the saved config too: what `data` names is checked first
    "train-resume-data-module": (
        None,
        {"data.augment": "os-system"},
        lambda run, tmp, data: ["train.py", f"resume={run}", "trainer.max_epochs=2"],
    ),
    "eval-data-module": (None, {"data": "open-w"}, lambda run, tmp, data: ["eval.py", f"ckpt_path={run}"]),
    "export-data-module": (None, {"data": "attribute-chain"}, lambda run, tmp, data: ["export.py", f"ckpt_path={run}"]),
}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.process
def test_every_entry_point_refuses_in_one_line_and_runs_nothing(entry, real_run, mnist_dir, tmp_path):
    bait = Bait(tmp_path / "bait")
    in_checkpoint, in_config, command = ENTRY_POINTS[entry]
    hparams, named = PAYLOADS[in_checkpoint] if in_checkpoint else (lambda b: {}, None)
    config = {key: PAYLOADS[name][0](bait)["net"] for key, name in (in_config or {}).items()}
    run = craft(real_run, tmp_path / "run", hparams(bait), config)
    result = script(*command(run, tmp_path, mnist_dir), env_path=bait.folder)
    bait.assert_untouched()
    if in_config:  # the file and the entry refused are named
        assert_refused(result, str(run / ".hydra" / "config.yaml"), f"{next(iter(in_config))}._target_=")
    else:
        downloaded = entry == "train-standalone-ckpt"
        assert_refused(result, str(tmp_path / "downloaded.ckpt" if downloaded else run / "checkpoints"), named)


@pytest.mark.process
def test_a_trusted_module_is_built_only_when_this_command_line_trusts_it(mnist_dir, tmp_path, monkeypatch):
    """trusted_modules=[mymod] on the command line builds mymod's network; the same checkpoint, or the run's
    saved config (which holds that very list), is refused without it, and the module is not even imported."""
    module = f"trusted_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(
        "import os\nfrom pathlib import Path\nfrom torch import nn\n\n"
        "if os.environ.get('IMPORTED_MARKER'):\n    Path(os.environ['IMPORTED_MARKER']).write_text('imported')\n\n\n"
        "class Net(nn.Sequential):\n    def __init__(self, num_classes=10, **unused):\n"
        "        super().__init__(nn.Flatten(), nn.Linear(784, num_classes))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    run = tmp_path / "run"
    train_run(
        mnist_dir, run, ["model=mlp", f"model.net._target_={module}.Net", f"trusted_modules=[{module}]", "report=false"]
    )
    checkpoint = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert checkpoint["hyper_parameters"]["net"]["_target_"] == f"{module}.Net"
    assert "trusted_modules" not in checkpoint["hyper_parameters"]  # the trust is never saved with the weights
    with pytest.raises(UnsafeConfigError, match=f"refused to build net._target_='{module}.Net'"):
        load_classifier(run / "checkpoints" / "last.ckpt")
    assert load_classifier(run / "checkpoints" / "last.ckpt", [module])[0].net[1].__class__.__module__ == module

    marker = tmp_path / "imported"
    refused = script("eval.py", f"ckpt_path={run}", env_path=tmp_path, IMPORTED_MARKER=str(marker))
    assert_refused(refused, str(run / "checkpoints"), f"{module}.Net")
    resumed = script(
        "train.py", f"resume={run}", "trainer.max_epochs=2", env_path=tmp_path, IMPORTED_MARKER=str(marker)
    )  # the saved config trusts it: that does not count
    assert_refused(resumed, str(run / ".hydra" / "config.yaml"), f"{module}.Net")
    assert not marker.exists()  # never imported

    resumed = script(
        "train.py",
        f"resume={run}",
        "trainer.max_epochs=2",
        f"trusted_modules=[{module}]",
        env_path=tmp_path,
        IMPORTED_MARKER=str(marker),
    )
    assert resumed.returncode == 0 and "test/acc" in resumed.stdout, resumed.stderr[-3000:]
    assert marker.exists()  # the control: the marker does show an import
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["epoch"] == 1  # trained on


def test_resume_state_sets_only_declared_metric_states():
    """The checkpoint names the metrics and states to restore: nothing else of the model may be set."""
    from torchmetrics.classification import MulticlassAccuracy

    from mnistlab.training.running_sums import ResumeState

    module = torch.nn.Module()
    module.acc = MulticlassAccuracy(10, average="micro")
    trainer = types.SimpleNamespace(ckpt_path="x.ckpt", train_dataloader=None, callback_metrics={})
    saved = {"torch_rng": torch.get_rng_state(), "cuda_rng": [], "batches": None}
    declared = next(iter(module.acc._defaults))
    for metrics in (
        {"nowhere": {"state": {}, "updates": 1}},  # not a module of the model: no KeyError
        {"acc": {"state": {"update": torch.zeros(1)}, "updates": 1}},  # a method, not a state
        {"acc": {"state": {declared: "text"}, "updates": 1}},
    ):
        callback = ResumeState()
        callback.loaded = {**saved, "metrics": metrics}
        with pytest.raises(CheckpointError, match="x.ckpt: its resume_state names .* not a metric state"):
            callback.on_train_start(trainer, module)
        assert not isinstance(module.acc.update, torch.Tensor)
    callback = ResumeState()
    callback.loaded = {**saved, "metrics": {"acc": {"state": {declared: torch.tensor(7)}, "updates": 3}}}
    callback.on_train_start(trainer, module)
    assert getattr(module.acc, declared) == 7 and module.acc._update_count == 3


def test_resume_state_callback_metrics_are_names_and_numbers():
    """The values a checkpoint says the callbacks saw are data: a table of short names and floats, bounded."""
    from mnistlab.training.running_sums import MAX_CALLBACK_METRICS, MAX_METRIC_NAME, checked_callback_metrics

    assert checked_callback_metrics({"val/acc": 0.9}, "x.ckpt") == {"val/acc": 0.9}
    assert checked_callback_metrics(None, "x.ckpt") == {}
    for bad in (
        ["val/acc"],
        {"val/acc": "0.9"},
        {"val/acc": torch.tensor(0.9)},
        {1: 0.9},
        {"x" * (MAX_METRIC_NAME + 1): 0.9},
        {f"m{i}": 0.0 for i in range(MAX_CALLBACK_METRICS + 1)},
    ):
        with pytest.raises(CheckpointError, match="x.ckpt: its resume_state.callback_metrics is not a table"):
            checked_callback_metrics(bad, "x.ckpt")
