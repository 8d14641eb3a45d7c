"""Received values checked against the same typed schemas as the command line (mnistlab.settings.schema): unknown
keys and wrong types refused, every range checked, floats finite; and the size of the network they describe
counted before any of its weights exist."""

import math
from typing import Iterable

from mnistlab.errors import ConfigError, ReceivedFileError
from mnistlab.settings import schema
from mnistlab.settings.targets import check_targets

CLASSIFIER = "mnistlab.training.classifier.Classifier"
MAX_VALUES = 10_000  # in one typed section (a config of mnistlab has about a hundred)
TRAINER_CHOICES = {
    "accelerator": ("auto", "cpu", "gpu", "cuda", "mps"),
    "precision": ("32-true", "32", 32, "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true", "64", 64),
    "devices": ("auto", 1, 2, 4, 8, -1),
    "num_nodes": (1, 2, 4, 8, 16),
}
TRAINING_LENGTH = {"max_epochs": 100_000, "max_steps": 1_000_000_000}  # in a saved config; the command line may


def schema_tables():
    networks = {
        "mnistlab.models.softmax.SoftmaxRegression": schema.SoftmaxConfig,
        "mnistlab.models.mlp.MLP": schema.MLPConfig,
        "mnistlab.models.cnn.CNN": schema.CNNConfig,
        "mnistlab.models.lstm.RowLSTM": schema.LSTMConfig,
    }
    optimizers = {"torch.optim.Adam": schema.AdamConfig, "torch.optim.SGD": schema.SGDConfig}
    schedulers = {
        f"mnistlab.training.schedulers.{name}": config
        for name, config in (
            ("exponential_decay", schema.ExponentialDecayConfig),
            ("cosine", schema.CosineConfig),
            ("one_cycle", schema.OneCycleConfig),
        )
    }
    data = {"mnistlab.data.mnist.MNISTDataModule": schema.DataConfig}
    return networks, optimizers, schedulers, data, schema


def count_values(node) -> int:
    if isinstance(node, dict):
        return 1 + sum(count_values(value) for value in node.values())
    if isinstance(node, (list, tuple)):
        return 1 + sum(count_values(value) for value in node)
    return 1


def check_finite(node, source, where: str) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            check_finite(value, source, f"{where}.{key}")
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            check_finite(value, source, f"{where}[{index}]")
    elif isinstance(node, float) and not math.isfinite(node):
        raise ReceivedFileError(f"{source}: {where} is {node}, not a finite number")


def typed(node, schema, source, where: str):
    """`node` merged into `schema` (a dataclass): types converted and checked, unknown keys refused, its range
    checks run. Returns the plain values."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if not isinstance(node, dict):
        raise ReceivedFileError(f"{source}: {where} must be a mapping, found a {type(node).__name__}")
    if count_values(node) > MAX_VALUES:  # OmegaConf takes seconds per 10,000 values
        raise ReceivedFileError(f"{source}: {where} holds over {MAX_VALUES} values; no config of mnistlab does")
    check_finite(node, source, where)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), node)
        OmegaConf.to_object(merged)  # runs the dataclasses' range checks
        return OmegaConf.to_container(merged, resolve=True)
    except ConfigError as err:
        raise ReceivedFileError(f"{source}: {err}") from None
    except (OmegaConfBaseException, ValueError, TypeError) as err:
        key = getattr(err, "full_key", None)  # OmegaConf names the key that failed
        named = f"{where}.{key}" if key else where
        raise ReceivedFileError(f"{source}: {named}: {str(err).splitlines()[0][:200]}") from None


def target_of(node) -> str:
    return node.get("_target_") if isinstance(node, dict) and isinstance(node.get("_target_"), str) else ""


def typed_model(model: dict, source, where: str = "model") -> dict:
    """A Classifier config: its network, optimizer, scheduler and ema each by their own schema. A network of a
    trusted module (no schema here) keeps its arguments, checked finite."""
    networks, optimizers, schedulers, _, schema = schema_tables()
    if not isinstance(model, dict):
        raise ReceivedFileError(f"{source}: {where} must be a mapping, found a {type(model).__name__}")
    parts = {key: model[key] for key in ("optimizer", "scheduler", "ema") if key in model}
    net_schema = networks.get(target_of(model.get("net")), schema.ClassifierConfig)
    result = typed({**model, "_target_": CLASSIFIER, "_recursive_": False}, net_schema, source, where)
    optimizer = parts.get("optimizer")
    if target_of(optimizer) in optimizers:
        optimizer = typed(optimizer, optimizers[target_of(optimizer)], source, f"{where}.optimizer")
    elif not isinstance(optimizer, dict):
        raise ReceivedFileError(f"{source}: {where}.optimizer must be a mapping with a _target_")
    result["optimizer"] = optimizer
    scheduler = parts.get("scheduler")
    if target_of(scheduler) in schedulers:
        scheduler = typed(scheduler, schedulers[target_of(scheduler)], source, f"{where}.scheduler")
    elif scheduler not in (None, {}) and not isinstance(scheduler, dict):
        raise ReceivedFileError(f"{source}: {where}.scheduler must be a mapping or null")
    result["scheduler"] = scheduler or None
    if parts.get("ema") is not None:
        result["ema"] = typed(parts["ema"], schema.EMAConfig, source, f"{where}.ema")
    return result


def typed_hparams(hparams: dict, source) -> dict:
    """A checkpoint's hyper_parameters (the Classifier's arguments) typed and checked; no _target_ keys added."""
    if not isinstance(hparams, dict) or not all(isinstance(key, str) for key in hparams):
        raise ReceivedFileError(f"{source}: hyper_parameters must map names to values")
    if not isinstance(hparams.get("net"), dict) or not isinstance(hparams.get("optimizer"), dict):
        raise ReceivedFileError(f"{source} was not written by mnistlab's train.py (no network config in it)")
    model = typed_model(hparams, source, "hyper_parameters")
    return {key: value for key, value in model.items() if key not in ("_target_", "_recursive_")}


def check_run_sections(config: dict, source, trusted_modules: Iterable[str] = ()) -> None:
    """A resolved run config: its top level by TrainConfig (unknown keys refused), data and model by theirs."""
    _, _, _, data_schemas, schema = schema_tables()
    typed({**config, "trusted_modules": []}, schema.TrainConfig, source, "the config")
    data = config.get("data")
    if target_of(data) in data_schemas:
        typed(data, data_schemas[target_of(data)], source, "data")
    elif not isinstance(data, dict):
        raise ReceivedFileError(f"{source}: data must be a mapping with a _target_")
    if "model" in config:
        typed_model(config["model"], source)
    trainer = config.get("trainer")
    if not isinstance(trainer, dict):
        raise ReceivedFileError(f"{source}: trainer must be a mapping")
    for key, allowed in TRAINER_CHOICES.items():
        if key in trainer and trainer[key] not in allowed:
            raise ReceivedFileError(f"{source}: trainer.{key}={str(trainer[key])[:40]!r} is not one of {allowed}")
    for key, largest in TRAINING_LENGTH.items():  # a received run may not keep the machine busy for ever
        value = trainer.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not -1 <= value <= largest):
            raise ReceivedFileError(f"{source}: trainer.{key} must be a whole number in [-1, {largest}], got {value!r}")


def parameter_count(net: dict, trusted_modules: Iterable[str] = (), source="the config") -> int:
    """The number of weights `net` (a checked network config) would have, counted on the meta device: no
    memory is taken for them."""
    import torch
    from hydra.utils import instantiate

    check_targets({"net": net}, trusted_modules, source=str(source))
    with torch.device("meta"):
        network = instantiate(net, _convert_="all")
    return sum(parameter.numel() for parameter in network.parameters())


def check_size(net: dict, source, max_parameters: int, trusted_modules: Iterable[str] = ()) -> int:
    try:
        count = parameter_count(net, trusted_modules, source)
    except ReceivedFileError:
        raise
    except Exception as err:  # the network's own checks of its arguments
        reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise ReceivedFileError(f"{source}: its network cannot be built ({reason})") from None
    if count > max_parameters:
        raise ReceivedFileError(
            f"{source}: its network has {count:,} weights, over the limit of {max_parameters:,} "
            f"(max_parameters=N on the command line raises it); nothing was allocated"
        )
    return count
