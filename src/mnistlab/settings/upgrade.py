"""Runs saved before the data module and the Classifier were built from config read as today's.

Then, the model config was the network's (`model._target_` a network, its arguments beside l2 and the init
keys) and the data config had no `_target_`; a checkpoint's hyperparameters held that model config as `model`.
Now the network is `model.net` (checkpoints: `net`) and the training keys are the Classifier's own arguments.
Before that, the package was flat: MOVED maps the modules a saved `_target_` may name to where they are now.
Imports nothing heavy.
"""

MNIST_DATA_MODULE = "mnistlab.data.mnist.MNISTDataModule"
CLASSIFIER = "mnistlab.training.classifier.Classifier"
OLD_TRAINING_KEYS = ("l2", "label_smoothing", "init", "init_std", "init_bias")  # the rest was the network's
MOVED = {  # old module -> new module, for `_target_`s only (exact module match, as the allowlist's)
    "mnistlab.schedulers": "mnistlab.training.schedulers",
    "mnistlab.csv_logger": "mnistlab.callbacks.csv_logger",
    "mnistlab.trackers": "mnistlab.callbacks.trackers",
    "mnistlab.progress": "mnistlab.callbacks.progress",
    "mnistlab.divergence": "mnistlab.callbacks.divergence",
    "mnistlab.pruning": "mnistlab.sweeps.pruning",
    "mnistlab.profiler": "mnistlab.perf.profiler",
    "mnistlab.callbacks.optuna_pruning": "mnistlab.sweeps.pruning",
}
SHARED = {  # conf/train.yaml's model block
    "optimizer": "${optimizer}",
    "scheduler": "${scheduler}",
    "ema": "${ema}",
    "mean": "${data.mean}",
    "std": "${data.std}",
}


def moved(node):
    """node with every `_target_` of a moved module renamed, at any depth (plain containers)."""
    if isinstance(node, dict):
        return {key: moved_target(value) if key == "_target_" else moved(value) for key, value in node.items()}
    if isinstance(node, list):
        return [moved(value) for value in node]
    return node


def moved_target(target):
    if not isinstance(target, str) or "." not in target:
        return target
    module, name = target.rsplit(".", 1)
    return f"{MOVED[module]}.{name}" if module in MOVED else target


def split_old_model(model: dict) -> dict:
    """An old model config as the Classifier's arguments: {net: <the network's>, l2: ..., ...}."""
    net = {key: value for key, value in model.items() if key not in OLD_TRAINING_KEYS}
    return {"net": net, **{key: model[key] for key in OLD_TRAINING_KEYS if key in model}}


def upgrade_hparams(hparams: dict) -> dict:
    """A checkpoint's hyper_parameters, with an old `model` entry split into `net` and the training keys."""
    hparams = moved(hparams)
    if "net" in hparams or not isinstance(hparams.get("model"), dict):
        return hparams
    rest = {key: value for key, value in hparams.items() if key != "model"}
    return {**split_old_model(hparams["model"]), **rest}


def upgrade_run_config(cfg: dict) -> dict:
    """A run's saved config (.hydra/config.yaml, plain and unresolved): `_target_`s for its data and model
    configs, moved modules renamed."""
    cfg = moved(cfg)  # interpolations kept as they were
    data, model = cfg.get("data"), cfg.get("model")
    if isinstance(data, dict) and "_target_" not in data:
        cfg["data"] = {**data, "_target_": MNIST_DATA_MODULE, "seed": "${seed}"}
    if isinstance(model, dict) and "net" not in model and "_target_" in model:
        cfg["model"] = {"_target_": CLASSIFIER, "_recursive_": False, **split_old_model(model), **SHARED}
    return cfg
