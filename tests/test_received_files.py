"""Files received from others are data (issue #21): an attacker's table of crafted checkpoints, run folders,
sweep folders, pictures and exports, each given to an entry point, each held to the contract of
tests/helpers/attack.py: exit 0 or a one-line `error:` with exit 2, no canary created, nothing outside the
run changed, within the time and memory bounds.

Every case crafts its input from fresh copies of a real run (tests/helpers/attack.py: Scene); the cases run
in-process, one after another, in the session's worker process (tests/helpers/attack.py: Worker). `refuse=True`
marks the inputs that only a refusal answers, `bomb=True` the denials of service, which must be refused before
the allocation (not by its failure under the worker's memory limit). The rows of MORE_VARIANTS run with
`pytest -m slow` only. The outcome counts are printed at the end of the module and written to
<pytest basetemp>/attack-received-summary.json.
"""

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace

import pytest
import torch
from helpers import attack
from helpers.attack import (
    CKPT_IN_RUN,
    COMPARE,
    EVAL,
    EVAL_CKPT,
    EXPORT,
    LAST,
    NEW_RUN,
    ONNX,
    PREDICT,
    PREDICT_RUN,
    RECENT,
    REPORT,
    RESUME,
    SUMMARY,
    TOP_K,
    WATCH,
    Case,
)
from helpers.attack_payloads import (
    OpensFile,
    RunsCommand,
    alias_bomb_list,
    bait_module,
    callback_state,
    edit_ckpt,
    edit_config,
    edit_run_ckpts,
    edit_yaml,
    large_png,
    png,
    save_torchscript,
    set_callback,
    set_hparams,
    set_net,
    symlink,
    yaml_alias_bomb,
)

BOMB_S = 10.0  # a refusal takes well under a second; a bomb that is not refused runs into this bound


def with_file(*args, name):
    """args with ckpt_path= pointing at {root}/<name> instead."""
    return tuple(f"ckpt_path={{root}}/{name}" if arg.startswith("ckpt_path=") else arg for arg in args)


# ---------------------------------------------------------------------------------------------------
# Crafting: each function takes the case's Scene


def both(*crafts):
    def craft(scene):
        for one in crafts:
            one(scene)

    return craft


def run_ckpts(change):
    return lambda scene: edit_run_ckpts(scene.run, change)


def loose_ckpt(change):
    return lambda scene: edit_ckpt(scene.loose, change)


def the_ckpt(change):
    return lambda scene: edit_ckpt(scene.ckpt, change)


def config(updates: dict):
    """The saved config with {dotted key: value}; strings filled with the scene's paths."""

    def craft(scene):
        edit_config(scene.run, {key: fill(scene, value) for key, value in updates.items()})

    return craft


def fill(scene, value):
    if isinstance(value, str):
        return scene.fill(value)
    if isinstance(value, dict):
        return {key: fill(scene, item) for key, item in value.items()}
    if isinstance(value, list):
        return [fill(scene, item) for item in value]
    return value


def write(relative: str, content, under: str = "run"):
    """A file of the scene (relative to run/ by default) with `content` (text, bytes, or a function of the scene)."""

    def craft(scene):
        path = getattr(scene, under) / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        data = content(scene) if callable(content) else content
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(fill(scene, data))

    return craft


def append_config(text: str):
    def craft(scene):
        path = scene.run / ".hydra" / "config.yaml"
        path.write_text(path.read_text() + fill(scene, text))

    return craft


def link(relative: str, target: str, under: str = "run"):
    """relative (in run/) becomes a symlink to `target` (filled: {outside}/x, /dev/zero, ...)."""
    return lambda scene: symlink(getattr(scene, under) / relative, scene.fill(target))


def deletes(which: str, path: str, **extra):
    """A ModelCheckpoint state naming `path` (filled) where Lightning removes files: for TOP_K its full top-k
    (best_k_models, kth_best_model_path, a kth value any new score beats) in the run's own dirpath, for LAST
    (monitor None, top 1) its previous best_model_path, which Lightning loads whatever its dirpath."""

    def change_for(scene):
        target = scene.fill(path)
        if which == TOP_K:
            worst = torch.tensor(-1.0)
            state = dict(
                best_model_path=target,
                best_model_score=worst,
                kth_best_model_path=target,
                kth_value=worst,
                best_k_models={target: worst},
                dirpath=scene.ckpt_dir,
            )
        else:
            state = dict(best_model_path=target)
        state.update({key: fill(scene, value) for key, value in extra.items()})
        return set_callback(which, **state)

    def craft(scene):
        scene.notes.append(f"{which}...: {scene.fill(path)}")
        edit_run_ckpts(scene.run, change_for(scene))
        edit_ckpt(scene.loose, change_for(scene))

    return craft


def callback(which: str, **state):
    """A ModelCheckpoint state with `state` (strings filled), in the run's own dirpath so that Lightning loads it
    all (with another dirpath it takes only best_model_path)."""

    def craft(scene):
        edit_run_ckpts(scene.run, set_callback(which, **{"dirpath": scene.ckpt_dir, **fill(scene, state)}))

    return craft


def keeps_best(path: str):
    """A top-k state (in the run's own dirpath) whose best, `path`, scores 2.0: no new epoch beats it, so
    train.py tests `path` when it ends."""

    def craft(scene):
        best, score = scene.fill(path), torch.tensor(2.0)
        state = dict(best_model_path=best, best_model_score=score, kth_best_model_path=best, kth_value=score)
        edit_run_ckpts(scene.run, set_callback(TOP_K, best_k_models={best: score}, dirpath=scene.ckpt_dir, **state))

    return craft


def outside_checkpoints(scene):
    """outside/ckpts: a copy of the run's checkpoints (a folder of the user's)."""
    shutil.copytree(scene.run / "checkpoints", scene.outside / "ckpts")


def torchscript_at(relative: str, under: str = "root"):
    return lambda scene: save_torchscript(getattr(scene, under) / relative, scene.canary)


def replace_run_ckpts_with_torchscript(scene):
    for path in (scene.run / "checkpoints").glob("*.ckpt"):
        save_torchscript(path, scene.canary)


def best_is(name: str):
    """Every checkpoint's ModelCheckpoint state names `name` (filled) as the best: what eval, predict, export and
    the report pick in a run folder."""
    return lambda scene: edit_run_ckpts(scene.run, lambda c: callback_state(c, TOP_K).update(best_model_path=name))


def pickle_at(relative: str, payload):
    return lambda scene: torch.save(payload(scene), scene.root / relative)


def os_system(scene):
    return {"_target_": "os.system", "_args_": [f"touch {scene.canary}"]}


def bait(scene) -> str:
    return bait_module(scene.root / "modules", f"bait_{scene.root.name.replace('-', '_')}", scene.canary)


def hidden_bomb(checkpoint):
    checkpoint["hyper_parameters"]["net"]["hidden"] = [100_000, 100_000]


def state_dict(change):
    return run_ckpts(lambda c: change(c["state_dict"]))


def renamed_state(sd):
    for name in list(sd):
        sd["x." + name] = sd.pop(name)


def reshaped_state(sd):
    for name in list(sd):
        sd[name] = torch.zeros(3, 3)


def int_state(sd):
    for name in list(sd):
        sd[name] = sd[name].to(torch.int64)


def text_state(sd):
    sd[next(iter(sd))] = "not a tensor"


def loops(change):
    return run_ckpts(lambda c: change(c["loops"]))


def set_pruning(state):
    """The Optuna pruning callback's saved state (mnistlab.sweeps.pruning), as a continued trial restores it."""
    return lambda c: c.setdefault("callbacks", {}).update(OptunaPruning=state)


def set_processed(value):
    def change(loops_state):
        loops_state["fit_loop"]["epoch_progress"]["current"]["processed"] = value

    return change


def job_json(job: str, value):
    return write(f"{job}/job.json", value if isinstance(value, str) else json.dumps(value), under="sweep")


def metrics(value):
    return write("metrics.json", value if isinstance(value, str) else json.dumps(value))


def replace_yaml(relative: str, value, under: str = "run"):
    return write(relative, value, under=under)


def zip_as_ckpt(scene):
    """A zip archive (of the run's .hydra folder) as last.ckpt: a zip, but not a checkpoint."""
    archive = shutil.make_archive(str(scene.root / "archive"), "zip", scene.run / ".hydra")
    shutil.move(archive, scene.ckpt)


def huge_csv_field(scene):
    path = scene.run / "metrics.csv"
    path.write_text(path.read_text() + "0,," + "9" * 3_000_000 + ",,,,,,,,\n")


def copy_config_outside(scene):
    other = scene.outside / "other.yaml"
    shutil.copy(scene.run / ".hydra" / "config.yaml", other)
    edit_yaml(other, lambda data: data["paths"].update(output_dir=str(scene.outside / "moved")))
    symlink(scene.run / ".hydra" / "config.yaml", other)


MLFLOW = {"_target_": "lightning.pytorch.loggers.MLFlowLogger", "tracking_uri": "sqlite:///{outside}/mlflow.db"}
CHECKPOINT_OUTSIDE = {"_target_": "lightning.pytorch.callbacks.ModelCheckpoint", "dirpath": "{outside}"}
OPEN_CANARY = {"_target_": "builtins.open", "file": "{canary}", "mode": "w"}

# ---------------------------------------------------------------------------------------------------
# The table

DELETE = "ModelCheckpoint state deletes outside the run"
CODE = "code through a resumed run's config"
TORCHSCRIPT = "TorchScript where a checkpoint is expected"
SYMLINK = "symlinks in a run folder"
REDIRECT = "config builds other classes, creates or redirects folders"
DOS = "denial of service"
MALFORMED = "malformed files"

CASES = [
    # --- Lightning removes the previous best/kth checkpoint: URLs skip its "inside dirpath" check, `..` fools it
    Case("del-resume-last-local-url", DELETE, RESUME, deletes(LAST, "local://{outside}")),
    Case("del-resume-last-dotdot", DELETE, RESUME, deletes(LAST, "{ckpt_dir}/../../outside")),
    Case("del-resume-last-file-url", DELETE, RESUME, deletes(LAST, "file://{outside}")),
    Case("del-resume-last-s3-url", DELETE, RESUME, deletes(LAST, "s3://attacker-bucket/x.ckpt")),
    Case("del-resume-last-simplecache", DELETE, RESUME, deletes(LAST, "simplecache::file://{outside}")),
    Case("del-resume-last-absolute", DELETE, RESUME, deletes(LAST, "{outside}")),
    Case("del-resume-topk-local-url", DELETE, RESUME, deletes(TOP_K, "local://{outside}")),
    Case("del-resume-topk-dotdot", DELETE, RESUME, deletes(TOP_K, "{ckpt_dir}/../../outside")),
    Case("del-resume-topk-memory-url", DELETE, RESUME, deletes(TOP_K, "memory://{outside}")),
    Case(
        "del-resume-last-model-path",
        DELETE,
        RESUME,
        deletes(LAST, "{ckpt}", last_model_path="local://{outside}", dirpath="{ckpt_dir}"),
    ),
    Case("del-resume-recent-local-url", DELETE, RESUME, deletes(RECENT, "local://{outside}/old.ckpt")),
    Case("del-ckpt-in-run-local-url", DELETE, CKPT_IN_RUN, deletes(LAST, "local://{outside}")),
    Case("del-ckpt-in-run-dotdot", DELETE, CKPT_IN_RUN, deletes(TOP_K, "{ckpt_dir}/../../outside")),
    Case("del-new-run-local-url", DELETE, NEW_RUN, deletes(LAST, "local://{outside}")),
    Case("del-new-run-dotdot", DELETE, NEW_RUN, deletes(LAST, "{new_run}/checkpoints/../../../outside")),
    Case("del-new-run-s3-url", DELETE, NEW_RUN, deletes(LAST, "s3://attacker-bucket/x.ckpt")),
    Case(
        "del-new-run-topk-own-dirpath",
        DELETE,
        NEW_RUN,
        deletes(TOP_K, "local://{outside}", dirpath="{new_run}/checkpoints"),
    ),
    Case(  # no better score: train.py tests the "best", a file of the user's
        "del-resume-best-is-outside-file",
        DELETE,
        RESUME,
        keeps_best("{outside}/old.ckpt"),
    ),
    # --- the saved config names code, directly, nested, through interpolations and YAML tags
    Case("cfg-os-system", CODE, RESUME, lambda s: edit_config(s.run, {"callbacks.evil": os_system(s)}), refuse=True),
    Case(
        "cfg-builtins-exec",
        CODE,
        RESUME,
        config({"logger.evil": {"_target_": "builtins.exec", "_args_": ["open('{canary}', 'w')"]}}),
        refuse=True,
    ),
    Case(
        "cfg-torch-load-data",
        CODE,
        RESUME,
        both(
            pickle_at("second.pt", lambda s: RunsCommand(f"touch {s.canary}")),
            config({"data": {"_target_": "torch.load", "f": "{root}/second.pt", "weights_only": False}}),
        ),
        refuse=True,
    ),
    Case(
        "cfg-pathlib-touch",
        CODE,
        RESUME,
        config({"callbacks.evil": {"_target_": "pathlib.Path.touch", "_args_": ["{canary}"]}}),
        refuse=True,
    ),
    Case(
        "cfg-shutil-rmtree",
        CODE,
        RESUME,
        config({"callbacks.evil": {"_target_": "shutil.rmtree", "_args_": ["{outside}"]}}),
        refuse=True,
    ),
    Case("cfg-nested-in-trainer", CODE, RESUME, config({"trainer.plugins": [OPEN_CANARY]}), refuse=True),
    Case(
        "cfg-nested-in-callback-arg", CODE, RESUME, config({"callbacks.checkpoint.filename": OPEN_CANARY}), refuse=True
    ),
    Case("cfg-args-of-network", CODE, RESUME, config({"model.net._args_": [OPEN_CANARY]}), refuse=True),
    Case("cfg-partial-data-module", CODE, RESUME, config({"data._partial_": True})),
    Case(
        "cfg-oc-create",
        CODE,
        RESUME,
        config({"callbacks.evil": "${oc.create:{_target_: builtins.open, file: '{canary}', mode: w}}"}),
        refuse=True,
    ),
    Case("cfg-oc-decode-target", CODE, RESUME, config({"model.net._target_": "${oc.decode:os.system}"}), refuse=True),
    Case(  # checked while unset (the default is allowed), built after seed_everything set it
        "cfg-oc-env-set-by-training",
        CODE,
        RESUME,
        config({"data._target_": "${oc.env:PL_GLOBAL_SEED,mnistlab.data.mnist.MNISTDataModule}"}),
    ),
    Case("cfg-new-dir-resolver", CODE, RESUME, config({"callbacks.checkpoint.dirpath": "${new_dir:{canary}}"})),
    Case(
        "cfg-yaml-python-object-tag",
        CODE,
        RESUME,
        append_config("evil: !!python/object/apply:os.system ['touch {canary}']\n"),
        refuse=True,
    ),
    Case("cfg-yaml-python-name-tag", CODE, RESUME, append_config("evil: !!python/name:os.system\n"), refuse=True),
    Case(
        "cfg-import-time-module",
        CODE,
        RESUME,
        lambda s: edit_config(s.run, {"model.net._target_": bait(s)}),
        refuse=True,
    ),
    Case(
        "cfg-trusts-itself",
        CODE,
        RESUME,
        lambda s: edit_config(s.run, {"model.net._target_": bait(s), "trusted_modules": [bait(s).split(".")[0]]}),
        refuse=True,
    ),
    Case(
        "cfg-ckpt-in-run-os-system",
        CODE,
        CKPT_IN_RUN,
        lambda s: edit_config(s.run, {"callbacks.evil": os_system(s)}),
        refuse=True,
    ),
    Case("cfg-hydra-node", CODE, RESUME, config({"hydra.callbacks.evil": OPEN_CANARY, "hydra.run.dir": "{outside}"})),
    Case(
        "cfg-eval-open-in-data-arg",
        CODE,
        EVAL,
        config({"data.augment": OPEN_CANARY}),
        refuse=True,
    ),
    # --- TorchScript (code) given where a checkpoint is expected
    Case(
        "ts-predict-as-ckpt",
        TORCHSCRIPT,
        with_file(*PREDICT, name="model.ckpt"),
        torchscript_at("model.ckpt"),
        refuse=True,
    ),
    Case("ts-predict-run-checkpoints", TORCHSCRIPT, PREDICT_RUN, replace_run_ckpts_with_torchscript, refuse=True),
    Case(
        "ts-predict-best-is-pt",
        TORCHSCRIPT,
        PREDICT_RUN,
        both(torchscript_at("checkpoints/model.pt", under="run"), best_is("{run}/checkpoints/model.pt")),
    ),
    Case(
        "ts-predict-best-is-outside",
        TORCHSCRIPT,
        PREDICT_RUN,
        both(torchscript_at("evil.ckpt", under="outside"), best_is("{outside}/evil.ckpt")),
    ),
    Case(
        "ts-predict-export-from-elsewhere",
        TORCHSCRIPT,
        with_file(*PREDICT, name="model.pt"),
        torchscript_at("model.pt"),
    ),
    Case(
        "ts-eval-as-ckpt", TORCHSCRIPT, with_file(*EVAL, name="model.ckpt"), torchscript_at("model.ckpt"), refuse=True
    ),
    Case(
        "ts-eval-best-is-pt",
        TORCHSCRIPT,
        EVAL,
        both(torchscript_at("checkpoints/model.pt", under="run"), best_is("model.pt")),
    ),
    Case(
        "ts-export-as-ckpt",
        TORCHSCRIPT,
        with_file(*EXPORT, name="model.ckpt"),
        torchscript_at("model.ckpt"),
        refuse=True,
    ),
    Case(
        "ts-train-ckpt-path",
        TORCHSCRIPT,
        with_file(*NEW_RUN, name="model.ckpt"),
        torchscript_at("model.ckpt"),
        refuse=True,
    ),
    Case("ts-report-run-checkpoints", TORCHSCRIPT, REPORT, replace_run_ckpts_with_torchscript, refuse=True),
    Case(
        "ts-resume-tests-outside-pt",
        TORCHSCRIPT,
        RESUME,
        both(
            torchscript_at("evil.pt"),
            keeps_best("{root}/evil.pt"),
        ),
    ),
    # --- symlinks in a run folder: what the tools write goes through them
    Case("sym-report-md-to-file", SYMLINK, REPORT, link("report.md", "{outside}/precious.txt")),
    Case("sym-report-md-dangling", SYMLINK, REPORT, link("report.md", "{outside}/new.md")),
    Case("sym-report-png-to-file", SYMLINK, REPORT, link("report.png", "{outside}/precious.txt")),
    Case("sym-eval-dir", SYMLINK, EVAL, link("eval", "{outside}")),
    Case(
        "sym-eval-json-dangling",
        SYMLINK,
        EVAL,
        lambda s: symlink(s.run / "eval" / f"{s.best.stem}-test.json", s.outside / "new.json"),
    ),
    Case("sym-watch-eval-dir", SYMLINK, WATCH, link("eval", "{outside}")),
    Case("sym-export-dir", SYMLINK, EXPORT, link("export", "{outside}")),
    Case("sym-metrics-json-resume", SYMLINK, RESUME, link("metrics.json", "{outside}/precious.txt")),
    Case("sym-metrics-json-compare", SYMLINK, COMPARE, link("metrics.json", "/dev/zero"), bomb=True, timeout=BOMB_S),
    Case("sym-metrics-csv-resume", SYMLINK, RESUME, link("metrics.csv", "{outside}/precious.txt")),
    Case("sym-env-json-resume", SYMLINK, RESUME, link("env.json", "{outside}/precious.txt")),
    Case("sym-train-log-resume", SYMLINK, RESUME, link("train.log", "{outside}/precious.txt")),
    Case(
        "sym-checkpoints-dir-resume",
        SYMLINK,
        RESUME,
        both(outside_checkpoints, link("checkpoints", "{outside}/ckpts")),
    ),
    Case("sym-tensorboard-dir-resume", SYMLINK, RESUME, link("tensorboard", "{outside}")),
    Case("sym-config-elsewhere-resume", SYMLINK, RESUME, copy_config_outside),
    Case("sym-checkpoint-loop", SYMLINK, EVAL, link("checkpoints/zz-loop.ckpt", "{run}/checkpoints/zz-loop.ckpt")),
    Case("sym-summary-csv", SYMLINK, SUMMARY, link("summary.csv", "{outside}/precious.txt", under="sweep")),
    # --- a saved config that builds some other class as the data module, makes folders, moves the run's output
    Case("data-is-model-checkpoint", REDIRECT, EVAL, config({"data": CHECKPOINT_OUTSIDE})),
    Case(
        "data-is-csv-logger",
        REDIRECT,
        EVAL,
        config({"data": {"_target_": "lightning.pytorch.loggers.CSVLogger", "save_dir": "{outside}"}}),
    ),
    Case(
        "data-is-trainer",
        REDIRECT,
        EXPORT,
        config({"data": {"_target_": "lightning.pytorch.Trainer", "default_root_dir": "{outside}"}}),
    ),
    Case("data-is-mlflow-logger", REDIRECT, EVAL, config({"data": MLFLOW}), timeout=30),
    Case(
        "data-is-classifier",
        REDIRECT,
        REPORT,
        lambda s: edit_yaml(s.run / ".hydra" / "config.yaml", lambda d: d.update(data=d["model"])),
    ),
    Case("data-new-dir-resolver", REDIRECT, EVAL, config({"data.data_dir": "${new_dir:{canary}}"})),
    Case("data-new-dir-report", REDIRECT, REPORT, config({"data.data_dir": "${new_dir:{canary}}"})),
    Case("data-download-outside", REDIRECT, EVAL, config({"data.data_dir": "{outside}/mnist", "data.download": True})),
    Case("out-paths-output-dir", REDIRECT, RESUME, config({"paths.output_dir": "{outside}/moved"})),
    Case("out-checkpoint-dirpath", REDIRECT, RESUME, config({"callbacks.checkpoint.dirpath": "{outside}"})),
    Case("out-csv-logger-save-dir", REDIRECT, RESUME, config({"logger.csv.save_dir": "{outside}"})),
    Case("out-tensorboard-save-dir", REDIRECT, RESUME, config({"logger.tensorboard.save_dir": "{outside}/tb"})),
    Case("out-default-root-dir", REDIRECT, RESUME, config({"trainer.default_root_dir": "{outside}"})),
    Case(
        "out-profiler-dirpath",
        REDIRECT,
        RESUME,
        config(
            {
                "trainer.profiler": {
                    "_target_": "lightning.pytorch.profilers.SimpleProfiler",
                    "dirpath": "{outside}",
                    "filename": "p",
                }
            }
        ),
    ),
    Case(
        "out-extra-checkpoint-callback",
        REDIRECT,
        RESUME,
        config({"callbacks.copy": {**CHECKPOINT_OUTSIDE, "save_top_k": -1}}),
    ),
    Case(
        "out-oc-env",
        REDIRECT,
        RESUME,
        config({"paths.output_dir": "${oc.env:ATTACK_DIR}"}),
        env=(("ATTACK_DIR", "{outside}/env"),),
    ),
    Case("out-now-resolver", REDIRECT, RESUME, config({"paths.output_dir": "{outside}/${now:%Y}"})),
    Case("out-ckpt-in-run-output-dir", REDIRECT, CKPT_IN_RUN, config({"paths.output_dir": "{outside}/moved"})),
    # --- denial of service
    Case("dos-alias-bomb-config-resume", DOS, RESUME, append_config(yaml_alias_bomb()), bomb=True, timeout=BOMB_S),
    Case("dos-alias-bomb-config-eval", DOS, EVAL, append_config(yaml_alias_bomb()), bomb=True, timeout=BOMB_S),
    Case(
        "dos-alias-bomb-overrides-compare",
        DOS,
        COMPARE,
        replace_yaml(".hydra/overrides.yaml", alias_bomb_list()),
        bomb=True,
        timeout=BOMB_S,
    ),
    Case(
        "dos-alias-bomb-overrides-summary",
        DOS,
        SUMMARY,
        both(
            replace_yaml("1/.hydra/overrides.yaml", alias_bomb_list(), under="sweep"),
            lambda s: (s.sweep / "1" / "job.json").unlink(),
        ),
        bomb=True,
        timeout=BOMB_S,
    ),
    Case(
        "dos-alias-bomb-overrides-report",
        DOS,
        REPORT,
        replace_yaml(".hydra/overrides.yaml", alias_bomb_list()),
        bomb=True,
        timeout=BOMB_S,
    ),
    Case("dos-huge-mlp-eval", DOS, EVAL, run_ckpts(hidden_bomb), bomb=True, timeout=BOMB_S),
    Case("dos-huge-mlp-predict", DOS, PREDICT, run_ckpts(hidden_bomb), bomb=True, timeout=BOMB_S),
    Case("dos-huge-mlp-export", DOS, EXPORT, run_ckpts(hidden_bomb), bomb=True, timeout=BOMB_S),
    Case(
        "dos-huge-mlp-resume",
        DOS,
        RESUME,
        config({"model.net.hidden": [100_000, 100_000]}),
        bomb=True,
        timeout=BOMB_S,
    ),
    Case("dos-many-layers-predict", DOS, PREDICT, run_ckpts(set_net(hidden=[1] * 100_000)), bomb=True, timeout=BOMB_S),
    Case(
        "dos-png-bomb",
        DOS,
        (*PREDICT[:2], "images={root}/bomb.png", "threads=1"),
        write("bomb.png", png(30_000, 30_000), under="root"),
        bomb=True,
        timeout=BOMB_S,
    ),
    Case(
        "dos-png-over-pillow-limit",
        DOS,
        (*PREDICT[:2], "images={root}/bomb.png", "threads=1"),
        write("bomb.png", png(10_000, 10_000), under="root"),
        bomb=True,
        timeout=BOMB_S,
    ),
    Case(
        "dos-png-bomb-beside-good",
        DOS,
        (*PREDICT[:2], "images=[{image},{root}/bomb.png]", "threads=1"),
        write("bomb.png", png(30_000, 30_000), under="root"),
        per_image=True,
        timeout=BOMB_S,
    ),
    Case(
        "dos-png-large-valid",
        DOS,
        (*PREDICT[:2], "images={root}/large.png", "threads=1"),
        write("large.png", large_png(9_000), under="root"),
        timeout=30,
    ),
    Case("dos-batch-size", DOS, RESUME, config({"data.batch_size": 10**12})),
    Case(
        "dos-max-epochs",
        DOS,
        ("train.py", "resume={run}", "threads=1"),
        config({"trainer.max_epochs": 10**18, "trainer.max_steps": -1}),
        bomb=True,
        timeout=BOMB_S,
    ),
    Case("dos-eval-batch-size", DOS, EVAL, config({"data.eval_batch_size": 10**12})),
    Case("dos-val-size", DOS, EVAL, config({"data.val_size": 10**12})),
    Case("dos-huge-int-metrics-json", DOS, COMPARE, metrics('{"val/acc": ' + "9" * 100_000 + "}")),
    Case("dos-deep-job-json", DOS, SUMMARY, job_json("0", "[" * 100_000 + "]" * 100_000)),
    Case("dos-metrics-csv-long-field", DOS, REPORT, huge_csv_field),
    Case("dos-metrics-csv-dev-zero", DOS, REPORT, link("metrics.csv", "/dev/zero"), bomb=True, timeout=BOMB_S),
    Case("dos-config-dev-zero", DOS, EVAL, link(".hydra/config.yaml", "/dev/zero"), bomb=True, timeout=BOMB_S),
    Case(
        "dos-job-json-dev-zero",
        DOS,
        SUMMARY,
        link("0/job.json", "/dev/zero", under="sweep"),
        bomb=True,
        timeout=BOMB_S,
    ),
    # --- malformed files
    Case(
        "bad-text-ckpt-eval",
        MALFORMED,
        with_file(*EVAL, name="notes.ckpt"),
        write("notes.ckpt", "just text\n", under="root"),
        refuse=True,
    ),
    Case(
        "bad-text-ckpt-predict",
        MALFORMED,
        with_file(*PREDICT, name="notes.ckpt"),
        write("notes.ckpt", "just text\n", under="root"),
        refuse=True,
    ),
    Case(
        "bad-text-ckpt-export",
        MALFORMED,
        with_file(*ONNX, name="notes.ckpt"),
        write("notes.ckpt", "just text\n", under="root"),
        refuse=True,
    ),
    Case(
        "bad-text-ckpt-train",
        MALFORMED,
        with_file(*NEW_RUN, name="notes.ckpt"),
        write("notes.ckpt", "just text\n", under="root"),
        refuse=True,
    ),
    Case(
        "bad-truncated-ckpt-eval",
        MALFORMED,
        EVAL_CKPT,
        lambda s: s.ckpt.write_bytes(s.ckpt.read_bytes()[:3000]),
        refuse=True,
    ),
    Case(
        "bad-truncated-ckpt-predict",
        MALFORMED,
        PREDICT,
        lambda s: s.ckpt.write_bytes(s.ckpt.read_bytes()[:3000]),
        refuse=True,
    ),
    Case(
        "bad-truncated-ckpt-export",
        MALFORMED,
        EXPORT,
        lambda s: s.ckpt.write_bytes(s.ckpt.read_bytes()[:3000]),
        refuse=True,
    ),
    Case(
        "bad-truncated-ckpt-train",
        MALFORMED,
        NEW_RUN,
        lambda s: s.loose.write_bytes(s.loose.read_bytes()[:3000]),
        refuse=True,
    ),
    Case("bad-zip-not-ckpt", MALFORMED, PREDICT, zip_as_ckpt, refuse=True),
    Case("bad-empty-ckpt", MALFORMED, EXPORT, write("checkpoints/last.ckpt", b""), refuse=True),
    Case(
        "bad-pickle-os-system",
        MALFORMED,
        EVAL_CKPT,
        lambda s: torch.save({"state_dict": {}, "x": RunsCommand(f"touch {s.canary}")}, s.ckpt),
        refuse=True,
    ),
    Case(
        "bad-pickle-open",
        MALFORMED,
        NEW_RUN,
        lambda s: torch.save({"state_dict": OpensFile(str(s.canary))}, s.loose),
        refuse=True,
    ),
    Case("bad-hparams-hidden-string", MALFORMED, EVAL_CKPT, the_ckpt(set_net(hidden="16"))),
    Case("bad-hparams-hidden-negative", MALFORMED, PREDICT, the_ckpt(set_net(hidden=[-5])), refuse=True),
    Case("bad-hparams-mean-nan", MALFORMED, EVAL_CKPT, the_ckpt(set_hparams(mean=float("nan")))),
    Case("bad-hparams-std-zero", MALFORMED, PREDICT, the_ckpt(set_hparams(std=0.0))),
    Case("bad-hparams-a-list", MALFORMED, PREDICT, the_ckpt(lambda c: c.update(hyper_parameters=[1, 2])), refuse=True),
    Case(
        "bad-hparams-net-a-list", MALFORMED, EXPORT, the_ckpt(set_hparams(net=["mnistlab.models.mlp.MLP"])), refuse=True
    ),
    Case("bad-hparams-unknown-key", MALFORMED, EVAL_CKPT, the_ckpt(set_hparams(surprise=1)), refuse=True),
    Case("bad-hparams-ema-a-list", MALFORMED, EVAL_CKPT, the_ckpt(set_hparams(ema=[1]))),
    Case("bad-hparams-dropout-string", MALFORMED, EXPORT, the_ckpt(set_net(dropout="lots"))),
    Case("bad-callback-score-string", MALFORMED, RESUME, callback(TOP_K, best_model_score="high")),
    Case("bad-callback-best-k-a-list", MALFORMED, RESUME, callback(TOP_K, best_k_models=[1, 2])),
    Case("bad-callback-dirpath-int", MALFORMED, RESUME, run_ckpts(set_callback(LAST, dirpath=7, best_model_path=7))),
    Case("bad-callbacks-a-string", MALFORMED, EVAL, run_ckpts(lambda c: c.update(callbacks="none"))),
    Case("bad-loops-a-string", MALFORMED, RESUME, run_ckpts(lambda c: c.update(loops="none"))),
    Case("bad-pruning-count-string", MALFORMED, RESUME, run_ckpts(set_pruning({"validations": "many"}))),
    Case("bad-pruning-count-negative", MALFORMED, RESUME, run_ckpts(set_pruning({"validations": -(10**18)}))),
    Case("bad-pruning-state-extra", MALFORMED, RESUME, run_ckpts(set_pruning({"validations": 1, "trial": "x"}))),
    Case("bad-loops-processed-string", MALFORMED, RESUME, loops(set_processed("many"))),
    Case("bad-state-dict-names", MALFORMED, EVAL, state_dict(renamed_state), refuse=True),
    Case("bad-state-dict-shapes", MALFORMED, PREDICT_RUN, state_dict(reshaped_state), refuse=True),
    Case("bad-state-dict-int-dtype", MALFORMED, EXPORT, state_dict(int_state)),
    Case("bad-state-dict-non-tensor", MALFORMED, EVAL, state_dict(text_state), refuse=True),
    Case("bad-state-dict-a-list", MALFORMED, RESUME, run_ckpts(lambda c: c.update(state_dict=[1, 2]))),
    Case("bad-global-step-string", MALFORMED, RESUME, run_ckpts(lambda c: c.update(global_step="three"))),
    Case("bad-global-step-string-watch", MALFORMED, WATCH, run_ckpts(lambda c: c.update(global_step="three"))),
    Case("bad-epoch-string", MALFORMED, EVAL, run_ckpts(lambda c: c.update(epoch="first"))),
    Case("bad-global-step-negative", MALFORMED, NEW_RUN, loose_ckpt(lambda c: c.update(global_step=-(10**18)))),
    Case("bad-metrics-json-list", MALFORMED, COMPARE, metrics([1, 2, 3])),
    Case("bad-metrics-json-string", MALFORMED, REPORT, metrics('"all good"')),
    Case("bad-metrics-json-nan", MALFORMED, COMPARE, metrics('{"val/acc": NaN, "test/acc": "high"}')),
    Case("bad-job-json-list", MALFORMED, SUMMARY, job_json("0", [1, 2])),
    Case("bad-job-json-string", MALFORMED, COMPARE, job_json("1", '"ok"')),
    Case("bad-job-json-status", MALFORMED, SUMMARY, job_json("0", {"status": "pwned", "overrides": []})),
    Case(
        "bad-job-json-types",
        MALFORMED,
        SUMMARY,
        job_json("1", {"status": "ok", "overrides": {"a": 1}, "metrics": [1], "seconds": "x"}),
    ),
    Case(
        "bad-job-json-seconds-string",
        MALFORMED,
        COMPARE,
        job_json("0", {"status": "ok", "seconds": "fast", "overrides": []}),
    ),
    Case("bad-env-json-list", MALFORMED, COMPARE, write("env.json", "[1, 2]")),
    Case("bad-env-json-started", MALFORMED, COMPARE, write("env.json", '{"started": "yesterday"}')),
    Case("bad-env-json-non-utf8", MALFORMED, COMPARE, write("env.json", b'{"started": "\xff\xfe"}')),
    Case("bad-overrides-a-dict", MALFORMED, COMPARE, replace_yaml(".hydra/overrides.yaml", "a: 1\nb: [2]\n")),
    Case(
        "bad-overrides-a-dict-summary",
        MALFORMED,
        SUMMARY,
        both(
            replace_yaml("0/.hydra/overrides.yaml", "a: 1\n", under="sweep"),
            lambda s: (s.sweep / "0" / "job.json").unlink(),
        ),
    ),
    Case(
        "bad-overrides-python-name",
        MALFORMED,
        REPORT,
        replace_yaml(".hydra/overrides.yaml", "- !!python/name:os.system\n"),
    ),
    Case("bad-config-empty", MALFORMED, EVAL, write(".hydra/config.yaml", "")),
    Case("bad-config-binary", MALFORMED, EVAL, write(".hydra/config.yaml", bytes(range(256)) * 4)),
    Case("bad-config-non-utf8", MALFORMED, RESUME, write(".hydra/config.yaml", b"seed: \xff\xfe\n")),
    Case("bad-config-a-list", MALFORMED, EXPORT, write(".hydra/config.yaml", "- 1\n- 2\n")),
    Case("bad-config-data-a-string", MALFORMED, REPORT, config({"data": "mnist"})),
    Case("bad-multirun-yaml", MALFORMED, SUMMARY, write("multirun.yaml", "hydra: [1, 2]\n", under="sweep")),
    Case(
        "bad-image-text",
        MALFORMED,
        (*PREDICT[:2], "images={root}/x.png", "threads=1"),
        write("x.png", "not a picture", under="root"),
        refuse=True,
    ),
    Case(
        "bad-image-truncated-png",
        MALFORMED,
        (*PREDICT[:2], "images={root}/x.png", "threads=1"),
        lambda s: (s.root / "x.png").write_bytes(s.image.read_bytes()[:60]),
        refuse=True,
    ),
    Case(
        "bad-pictures-beside-good",
        MALFORMED,
        (*PREDICT[:2], "images=[{root}/x.png,{image},{root}/y.png]", "threads=1"),
        both(write("x.png", "not a picture", under="root"), write("y.png", png(3, 3)[:40], under="root")),
        per_image=True,
    ),
    Case(
        "bad-onnx-garbage",
        MALFORMED,
        with_file(*PREDICT, name="model.onnx"),
        write("model.onnx", b"\x08\x07garbage" * 50, under="root"),
        refuse=True,
    ),
]

MORE_VARIANTS = {  # rows of `pytest -m slow` only: more variants of what the default rows cover
    "del-resume-last-file-url",
    "del-resume-last-simplecache",
    "del-resume-last-absolute",
    "del-resume-topk-dotdot",
    "del-resume-topk-memory-url",
    "del-resume-last-model-path",
    "del-resume-recent-local-url",
    "del-ckpt-in-run-dotdot",
    "del-new-run-s3-url",
    "del-new-run-topk-own-dirpath",
    "cfg-builtins-exec",
    "cfg-pathlib-touch",
    "cfg-nested-in-callback-arg",
    "cfg-args-of-network",
    "cfg-oc-decode-target",
    "cfg-yaml-python-name-tag",
    "cfg-trusts-itself",
    "cfg-ckpt-in-run-os-system",
    "cfg-hydra-node",
    "ts-predict-best-is-outside",
    "ts-predict-export-from-elsewhere",
    "ts-eval-best-is-pt",
    "ts-report-run-checkpoints",
    "sym-report-md-dangling",
    "sym-report-png-to-file",
    "sym-eval-json-dangling",
    "sym-metrics-json-compare",
    "sym-metrics-csv-resume",
    "sym-env-json-resume",
    "sym-tensorboard-dir-resume",
    "sym-checkpoint-loop",
    "sym-train-log-resume",
    "data-is-csv-logger",
    "data-is-mlflow-logger",
    "data-is-classifier",
    "out-tensorboard-save-dir",
    "out-default-root-dir",
    "out-profiler-dirpath",
    "out-extra-checkpoint-callback",
    "out-now-resolver",
    "out-ckpt-in-run-output-dir",
    "dos-alias-bomb-config-eval",
    "dos-alias-bomb-overrides-summary",
    "dos-alias-bomb-overrides-report",
    "dos-huge-mlp-predict",
    "dos-huge-mlp-export",
    "dos-many-layers-predict",
    "dos-png-over-pillow-limit",
    "dos-png-large-valid",
    "dos-val-size",
    "dos-metrics-csv-dev-zero",
    "dos-job-json-dev-zero",
    "dos-huge-mlp-resume",
    "bad-truncated-ckpt-eval",
    "bad-truncated-ckpt-export",
    "bad-truncated-ckpt-train",
    "bad-empty-ckpt",
    "bad-pickle-open",
    "bad-hparams-hidden-string",
    "bad-hparams-mean-nan",
    "bad-hparams-std-zero",
    "bad-hparams-net-a-list",
    "bad-hparams-unknown-key",
    "bad-hparams-dropout-string",
    "bad-callback-score-string",
    "bad-callback-best-k-a-list",
    "bad-loops-a-string",
    "bad-pruning-count-negative",
    "bad-pruning-state-extra",
    "bad-state-dict-shapes",
    "bad-state-dict-int-dtype",
    "bad-state-dict-non-tensor",
    "bad-global-step-negative",
    "bad-metrics-json-nan",
    "bad-job-json-string",
    "bad-job-json-types",
    "bad-job-json-seconds-string",
    "bad-env-json-list",
    "bad-env-json-non-utf8",
    "bad-overrides-a-dict-summary",
    "bad-config-empty",
    "bad-config-a-list",
    "bad-config-data-a-string",
    "bad-multirun-yaml",
    "bad-image-text",
}
CASES = [replace(case, slow=case.id in MORE_VARIANTS) for case in CASES]


def test_the_table_covers_every_class_and_entry_point():
    assert len(CASES) >= 80 and len({case.id for case in CASES}) == len(CASES)
    assert MORE_VARIANTS <= {case.id for case in CASES}
    default = [case for case in CASES if not case.slow]
    for cases in (CASES, default):
        assert {case.kind for case in cases} == {DELETE, CODE, TORCHSCRIPT, SYMLINK, REDIRECT, DOS, MALFORMED}
        assert {case.args[0] for case in cases} == {*attack.SCRIPTS, *attack.MODULES}
        commands = {" ".join(case.args[:2]).split("=")[0] for case in cases}
        assert {"train.py resume", "train.py ckpt_path", "eval.py ckpt_path", "predict.py ckpt_path"} <= commands
        assert any("watch=true" in case.args for case in cases) and any("format=onnx" in case.args for case in cases)


@pytest.fixture(scope="module")
def outcomes(request, mnist_dir, tmp_path_factory):
    """Every selected case, run in this module's worker: {case id: result}."""
    cases = attack.selected(request, "test_received_file", "case")

    def details(results: dict) -> dict:
        return {
            "cases": len(cases),
            "results": [
                {
                    "id": case.id,
                    "kind": case.kind,
                    "outcome": attack.outcome(results[case.id]),
                    "violations": attack.violations(case, results[case.id]),
                    "seconds": results[case.id].get("seconds"),
                }
                for case in cases
            ],
        }

    return attack.run_and_summarise(
        request, tmp_path_factory, mnist_dir, cases, "received", "received files", "cases", details
    )


@pytest.mark.parametrize(
    "case", [pytest.param(case, id=case.id, marks=[pytest.mark.slow] if case.slow else []) for case in CASES]
)
def test_received_file(case, outcomes):
    result = outcomes[case.id]
    found = attack.violations(case, result)
    assert not found, attack.describe(case, result, found)


# an argparse tool (no torch import: fast in a process of its own) and a Hydra one (~10 s more: pytest -m slow)
FIDELITY = [pytest.param("bad-metrics-json-list"), pytest.param("bad-text-ckpt-eval", marks=pytest.mark.slow)]


@pytest.mark.parametrize("case_id", FIDELITY)
def test_the_worker_answers_as_a_real_process(case_id, mnist_dir, tmp_path_factory):
    """The in-process emulation (tests/helpers/attack.py: run_job) against `python <tool> ...` in its own process:
    the same outcome, and for a traceback the same exception line."""
    [case] = [case for case in CASES if case.id == case_id]
    folder = tmp_path_factory.mktemp("fidelity")
    worker = attack.shared_worker(tmp_path_factory.getbasetemp() / "attack-logs")
    base = attack.base_artifacts(tmp_path_factory.getbasetemp(), mnist_dir, worker)
    in_process = attack.run_cases([case], base, worker, folder / "worker")[case.id]
    scene = attack.Scene(folder / "process" / case.id, base)
    case.craft(scene)
    job = scene.job(case, folder / "capture")
    tool = [str(attack.ROOT / job["tool"])] if job["tool"] in attack.SCRIPTS else ["-m", attack.MODULES[job["tool"]]]
    env = {**os.environ, "PYTHONPATH": str(attack.ROOT / "src")}
    env.pop("HYDRA_FULL_ERROR", None)
    done = subprocess.run(
        [sys.executable, *tool, *job["args"]], cwd=job["cwd"], capture_output=True, text=True, timeout=300, env=env
    )
    process = {"rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr}
    assert attack.outcome(process) == attack.outcome(in_process), (process["stderr"][-2000:], in_process["stderr"])
    assert process["rc"] == in_process["rc"]
    if "Traceback" in process["stderr"]:
        assert attack.how_it_failed(process).split(" (at ")[0] == attack.how_it_failed(in_process).split(" (at ")[0]
    else:
        assert process["stderr"].replace(str(scene.root), "") == in_process["stderr"].replace(
            str(folder / "worker" / case.id), ""
        )
