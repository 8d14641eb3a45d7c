"""A run's config composed once (mnistlab.compat.hydra_compose): the task gets what Hydra's two compositions give it.

Each command line runs a @hydra.main task over conf/train.yaml in this process, with and without
`composing_once`; the config the task gets, Hydra's own node, the files in <run>/.hydra and any error must be
the same, with fewer compositions for a run."""

from contextlib import nullcontext
from pathlib import Path

import hydra
import pytest
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from mnistlab.compat.hydra_compose import composing_once
from mnistlab.runs.run_dir import register_resolvers
from mnistlab.settings.schema import register_schemas

CONF = str(Path(__file__).resolve().parents[1] / "conf")

register_schemas()
register_resolvers()
LOAD = ConfigLoaderImpl.load_configuration  # Hydra's composing, counted in each test


def outcome(argv: list, tmp_path: Path, monkeypatch, once: bool) -> dict:
    """What the task saw (each job's config and Hydra node), what Hydra wrote, the error, and the compositions."""
    base = tmp_path / ("once" if once else "twice")  # each its own folders, named alike in what is compared
    base.mkdir()
    seen, composed = [], []

    def counted(self, *args, **kwargs):
        composed.append(kwargs.get("run_mode"))
        return LOAD(self, *args, **kwargs)

    monkeypatch.setattr(ConfigLoaderImpl, "load_configuration", counted)

    @hydra.main(version_base="1.3", config_path=CONF, config_name="train")
    def task(cfg):
        seen.append((OmegaConf.to_yaml(cfg), OmegaConf.to_yaml(HydraConfig.get())))

    where = [f"hydra.run.dir={base / 'run'}", f"hydra.sweep.dir={base / 'sweep'}"]
    monkeypatch.setattr("sys.argv", ["train.py", *argv, *where])
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")  # an error is raised, as mnistlab.cli sets it
    monkeypatch.chdir(base)
    error = None
    try:
        with composing_once() if once else nullcontext():
            task()
    except Exception as err:  # noqa: BLE001  (compared with Hydra's own)
        error = f"{type(err).__name__}: {err}"
    written = {
        str(path.relative_to(base)): path.read_text()
        for path in sorted(base.rglob("*"))
        if path.is_file() and ".hydra" in path.parts
    }
    named_alike = lambda text: text and text.replace(str(base), "<base>")  # noqa: E731
    return {
        "seen": [tuple(map(named_alike, job)) for job in seen],
        "written": {name: named_alike(text) for name, text in written.items()},
        "error": named_alike(error),
        "compositions": composed,
    }


COMMANDS = [  # (command line, what it is: a run composes once less than in Hydra, a multirun as often, or fails)
    ([], "run"),
    (["experiment=speedrun", "seed=3", "+trainer.enable_progress_bar=false"], "run"),
    (["model=mlp", "optimizer=sgd", "optimizer.lr=0.1", "data.batch_size=32"], "run"),
    (["hydra.job.chdir=true"], "run"),
    (["hydra.verbose=true"], "run"),  # Hydra's debug lines compose twice more, in both
    (["hydra.mode=RUN"], "run"),  # the mode set: Hydra adds no override of its own
    (["hydra.mode=MULTIRUN"], "multirun"),  # a multirun chosen by the config, after a run's composition
    (["-m", "seed=1,2"], "multirun"),  # sweep values: Hydra's own reading of the mode
    (["~report"], "run"),  # a key deleted
    (["seed=1,2"], "error"),  # sweep values in a run
    (["model=nonexistent"], "error"),
    (["no_such_key=1"], "error"),
    (["seed=one"], "error"),
]


@pytest.mark.parametrize(("argv", "kind"), COMMANDS, ids=[" ".join(a) or "defaults" for a, _ in COMMANDS])
def test_a_run_composed_once_gets_what_hydra_composing_twice_gives(argv, kind, tmp_path, monkeypatch):
    hydras = outcome(argv, tmp_path, monkeypatch, once=False)
    ours = outcome(argv, tmp_path, monkeypatch, once=True)
    assert ours["error"] == hydras["error"]
    assert ours["seen"] == hydras["seen"]
    assert ours["written"] == hydras["written"]
    assert (hydras["error"] is not None) == (kind == "error")
    if kind == "run":
        assert len(hydras["seen"]) == 1 and len(hydras["written"]) == 3  # config, hydra and overrides .yaml
        assert len(ours["compositions"]) == len(hydras["compositions"]) - 1
        assert len(ours["compositions"]) == 1 or "hydra.verbose=true" in argv
    elif kind == "multirun":
        assert len(hydras["seen"]) == (2 if argv[0] == "-m" else 1)  # a job for each value swept
        assert len(ours["compositions"]) == len(hydras["compositions"])


def test_the_methods_are_hydras_own_again_after():
    from hydra._internal.hydra import Hydra

    before = (Hydra.get_mode, Hydra.compose_config)
    with composing_once():
        assert (Hydra.get_mode, Hydra.compose_config) != before
    assert (Hydra.get_mode, Hydra.compose_config) == before
