"""The boundary's pieces on their own (src/mnistlab/received/): each refuses what it must, in one line naming
the file, and passes what train.py itself writes. The attack table and the fuzzer over whole entry points are
tests/test_received_files.py and tests/test_fuzz_received.py."""

import json
import os

import pytest
import torch

from mnistlab.errors import ReceivedFileError
from mnistlab.received.checkpoint import checkpoint_in, lightning_state, model_checkpoint_state
from mnistlab.received.files import read_bytes, refuse_links
from mnistlab.received.records import read_job_record, read_metrics
from mnistlab.received.run_config import check_write_locations, resolve_once
from mnistlab.received.schemas import check_size, typed_hparams
from mnistlab.received.yaml_file import parse_yaml

BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b]\n"


@pytest.mark.parametrize(
    "text, reason",
    [
        (BILLION_LAUGHS, "anchors and aliases"),
        ("a: !!python/name:os.system\n", "tag"),
        ("a: !!python/object/apply:os.system [touch x]\n", "tag"),
        ("a: !custom 1\n", "tag"),
        ("a: .nan\n", "not a finite number"),
        ("a: 2026-01-01\n", "holds a date"),
        ("a: [" * 40 + "]" * 40 + "\n", "nested deeper"),
        ("{1: 2}\n", "not a string"),
        ("a: [unclosed\n", "not valid YAML"),
    ],
)
def test_yaml_refuses_what_is_not_plain_data(text, reason):
    with pytest.raises(ReceivedFileError, match=reason):
        parse_yaml(text, "x.yaml")


def test_yaml_passes_what_hydra_saves():
    assert parse_yaml("a: ${b}\nb: [1, 2.5, true, null, s]\n", "x") == {"a": "${b}", "b": [1, 2.5, True, None, "s"]}


def test_files_are_read_only_as_regular_files_within_their_limit(tmp_path):
    target = tmp_path / "target"
    target.write_text("secret")
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(ReceivedFileError, match="symbolic link"):
        read_bytes(tmp_path / "link", 100)
    assert read_bytes(tmp_path / "link", 100, follow_link=True) == b"secret"  # a path the user typed
    with pytest.raises(ReceivedFileError, match="larger than"):
        read_bytes(target, 3)
    with pytest.raises(ReceivedFileError, match="not a regular file"):
        read_bytes(tmp_path, 100, follow_link=True)
    run = tmp_path / "run"
    (run / "eval").mkdir(parents=True)
    refuse_links(run)
    (run / "eval" / "report.md").symlink_to(tmp_path / "elsewhere")  # dangling: a write would create it
    with pytest.raises(ReceivedFileError, match="symbolic link in the run folder"):
        refuse_links(run)


@pytest.mark.parametrize(
    "config, reason",
    [
        ({"a": "${oc.env:HOME}"}, "interpolation other than a reference"),
        ({"a": "${new_dir:/tmp/x}"}, "interpolation other than a reference"),
        ({"a": "${oc.select:${oc.env:X},1}"}, "interpolation other than a reference"),
        ({"a": "\\${b}", "b": 1}, "interpolation"),
        ({"a": "${a}"}, "refers to itself"),
        ({"a": "${b}", "b": "${a}"}, "refers to itself"),
        ({"a": "${missing}"}, "refused"),
        # references to references: 10 ** 6 values from a few lines
        ({f"l{i}": [f"${{l{i - 1}}}"] * 10 if i else list(range(10)) for i in range(7)}, "expand to over"),
    ],
)
def test_saved_configs_resolve_only_references_and_only_once(config, reason):
    with pytest.raises(ReceivedFileError, match=reason):
        resolve_once(config, "config.yaml")


def test_references_resolve_to_a_plain_container():
    resolved = resolve_once({"a": "${b.c}", "b": {"c": [1, 2]}, "d": "${oc.select:b.x,3}"}, "config.yaml")
    assert resolved == {"a": [1, 2], "b": {"c": [1, 2]}, "d": 3}


@pytest.mark.parametrize(
    "where, value",
    [
        ("callbacks.checkpoint.dirpath", "/tmp/elsewhere"),
        ("callbacks.checkpoint.dirpath", "file:///RUN/checkpoints"),
        ("callbacks.checkpoint.filename", "../../x"),
        ("logger.tb.save_dir", "RUN/../x"),
        ("logger.tb.name", "/abs"),
        ("logger.tb.version", "~/x"),
        ("trainer.default_root_dir", "s3://bucket/x"),
    ],
)
def test_a_resumed_run_writes_only_inside_its_folder(where, value, tmp_path):
    run = tmp_path / "run"
    config = {"logger": {"tb": {"save_dir": str(run)}}}
    node = config
    *parents, leaf = where.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value.replace("RUN", str(run))
    with pytest.raises(ReceivedFileError, match="would write outside the run folder"):
        check_write_locations(config, run, "config.yaml")
    check_write_locations({"callbacks": {"c": {"dirpath": f"{run}/checkpoints", "monitor": "val/acc"}}}, run, "x")


def hparams(**net):
    return {
        "net": {"_target_": "mnistlab.models.mlp.MLP", "hidden": [8], **net},
        "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3},
    }


@pytest.mark.parametrize(
    "changed, reason",
    [
        ({"hidden": "x"}, "hidden"),
        ({"hidden": [-1]}, "positive sizes"),
        ({"dropout": float("nan")}, "not a finite number"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_hyperparameters_are_typed_by_the_command_lines_schema(changed, reason):
    with pytest.raises(ReceivedFileError, match=reason):
        typed_hparams(hparams(**changed), "x.ckpt")
    assert typed_hparams(hparams(), "x.ckpt")["net"]["hidden"] == [8]


def test_a_huge_network_is_refused_before_any_weight_exists():
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ReceivedFileError, match="weights, over the limit of 50,000,000"):
        check_size({"_target_": "mnistlab.models.mlp.MLP", "hidden": [100_000, 100_000]}, "x.ckpt", 50_000_000)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: not 40 GB of weights
    assert check_size({"_target_": "mnistlab.models.mlp.MLP", "hidden": [500]}, "x", 50_000_000) == 397_510


def test_model_checkpoint_state_keeps_only_paths_of_its_own_checkpoints(tmp_path):
    checkpoints = tmp_path / "run" / "checkpoints"
    checkpoints.mkdir(parents=True)
    own = str(checkpoints / "epoch001.ckpt")
    state = {
        "monitor": "val/acc",
        "dirpath": str(checkpoints),
        "best_model_score": torch.tensor(0.9),
        "best_model_path": "file:///tmp/victim",
        "best_k_models": {own: torch.tensor(0.9), "/tmp/victim": torch.tensor(1.0), f"{checkpoints}/../x.ckpt": 1.0},
        "kth_best_model_path": str(checkpoints / ".." / ".." / "victim.ckpt"),
        "kth_value": float("nan"),
        "last_model_path": "memory://x.ckpt",
    }
    kept = model_checkpoint_state(state, checkpoints)
    assert kept["best_k_models"] == {own: torch.tensor(0.9)}
    assert kept["best_model_path"] == kept["kth_best_model_path"] == kept["last_model_path"] == ""
    assert kept["kth_value"] is None
    elsewhere = model_checkpoint_state({**state, "dirpath": "/tmp"}, checkpoints)  # as if the run had moved
    assert elsewhere["best_k_models"] == {}  # only .ckpt files directly in /tmp would be taken, from our folder
    assert elsewhere["dirpath"] == os.path.realpath(checkpoints) and elsewhere["best_model_path"] == ""
    moved = model_checkpoint_state(
        {**state, "dirpath": "/old/run/checkpoints", "best_model_path": "/old/run/checkpoints/epoch001.ckpt"},
        checkpoints,
    )
    assert moved["best_model_path"] == os.path.join(os.path.realpath(checkpoints), "epoch001.ckpt")
    assert model_checkpoint_state({**state, "dirpath": f"file://{checkpoints}"}, checkpoints) is None
    (checkpoints / "link.ckpt").symlink_to(tmp_path / "victim")
    assert checkpoint_in(str(checkpoints / "link.ckpt"), checkpoints) is None
    assert checkpoint_in(own, checkpoints) == own


def test_a_checkpoint_from_elsewhere_restores_no_callback_state(tmp_path):
    from mnistlab.received.checkpoint import ReceivedCheckpoint

    received = ReceivedCheckpoint(tmp_path / "x.ckpt", {}, {}, 3, 1, {"callbacks": {"ModelCheckpoint{}": {}}})
    assert lightning_state(received, None)["callbacks"] == {}


@pytest.mark.parametrize(
    "content, reason",
    [
        ([1, 2], "must map names to numbers"),
        ('"text"', "must map names to numbers"),
        ("{not json", "not valid JSON"),
        ("[" * 100_000, "not valid JSON"),
    ],
)
def test_metrics_files_are_mappings_of_numbers(content, reason, tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(ReceivedFileError, match=reason):
        read_metrics(path)


def test_records_keep_numbers_and_known_fields_only(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text('{"val/acc": 0.9, "test/acc": NaN, "step": "12", "x": [1]}')
    assert read_metrics(path) == {"val/acc": 0.9, "test/acc": None, "step": None, "x": None}
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"status": "ok", "seconds": -5, "overrides": ["a=1"], "metrics": {}, "extra": 1}))
    assert read_job_record(job) == {"status": "ok", "seconds": None, "overrides": ["a=1"], "metrics": {}, "error": None}
    for bad in ({"status": "rm -rf"}, {"status": "ok", "overrides": "a=1"}, {"status": "ok", "metrics": [1]}):
        job.write_text(json.dumps(bad))
        with pytest.raises(ReceivedFileError, match=str(job)):
            read_job_record(job)


def test_a_picture_declaring_too_many_pixels_is_refused_before_decoding(tmp_path):
    import struct
    import zlib

    from mnistlab.errors import ImageError
    from mnistlab.received.image import read_gray

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)  # 30000 x 30000 gray, a few bytes of data
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )
    assert os.path.getsize(bomb) < 100
    with pytest.raises(ImageError, match="30000 x 30000 pixels|decompression bomb"):
        read_gray(bomb)
