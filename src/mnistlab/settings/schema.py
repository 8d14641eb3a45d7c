"""Typed schema of the training config.

Types are checked by OmegaConf while Hydra composes the config (so
`optimizer.lr=abc` fails before anything runs); value ranges are checked in
`__post_init__` when `validate` turns the config into these dataclasses.
Imports nothing heavy: `train.py --help` must stay fast.
"""

from dataclasses import dataclass, field
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from mnistlab.data.datasets import DATASETS
from mnistlab.errors import ConfigError
from mnistlab.settings.limits import DEFAULT_MAX_PARAMETERS


def require(ok: bool, key: str, rule: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"{key} {rule}, got {value!r}")


def check_trusted_modules(names: List[str]) -> None:
    """trusted_modules (mnistlab.settings.targets): module names whose classes configs and checkpoints may name."""
    require(
        all(name and all(part.isidentifier() for part in name.split(".")) for name in names),
        "trusted_modules",
        "must hold module names such as mypkg.nets",
        list(names),
    )


def check_max_parameters(value: int) -> None:
    require(value > 0, "max_parameters", "must be a positive integer", value)


def check_dropout(key: str, value: float) -> None:
    require(0.0 <= value < 1.0, key, "must be in [0, 1)", value)


@dataclass
class AugmentConfig:
    shift: float = 0.0  # pixels, uniform in [-shift, shift] on each axis
    rotate: float = 0.0  # degrees, uniform in [-rotate, rotate]
    scale: float = 0.0  # size factor uniform in [1 - scale, 1 + scale]

    def __post_init__(self) -> None:
        require(0 <= self.shift <= 14, "data.augment.shift", "must be in [0, 14] pixels", self.shift)
        require(0 <= self.rotate <= 180, "data.augment.rotate", "must be in [0, 180] degrees", self.rotate)
        require(0 <= self.scale < 1, "data.augment.scale", "must be in [0, 1)", self.scale)


MAX_BATCH = 60_000  # MNIST's training images: a batch or split cannot be larger
MAX_FOLDS = 100  # of cross-validation: each fold still holds 600 MNIST images
MAX_LAYERS = 64  # of a network; 28 x 28 pixels leave room for far fewer pooled convolutions


@dataclass
class DataConfig:
    """conf/data/mnist.yaml: the arguments of mnistlab.data.mnist.MNISTDataModule."""

    _target_: str = "mnistlab.data.mnist.MNISTDataModule"
    data_dir: str = "data"
    batch_size: int = 64
    eval_batch_size: int = 1000
    val_size: int = 5000
    download: bool = True
    mean: float = 0.1307  # the input normalisation: the model's (model.mean: ${data.mean}), kept here with the data
    std: float = 0.3081
    seed: Optional[int] = None  # of the batch order; conf/data/mnist.yaml: ${seed}
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    dataset: str = "mnist"  # or fashion_mnist, kmnist (mnistlab.data.datasets)
    folds: Optional[int] = None  # k-fold cross-validation: validation is fold `fold` of `folds` (val_size unused)
    fold: int = 0
    split_seed: int = 0  # of the folds: the same for every seed, so that fold i is the same images in every run

    def __post_init__(self) -> None:

        require(self.dataset in DATASETS, "data.dataset", f"must be one of {', '.join(DATASETS)}", self.dataset)
        if self.folds is None:
            require(self.fold == 0, "data.fold", "needs data.folds (the number of folds)", self.fold)
        else:
            require(2 <= self.folds <= MAX_FOLDS, "data.folds", f"must be in [2, {MAX_FOLDS}]", self.folds)
            require(0 <= self.fold < self.folds, "data.fold", f"must be in [0, {self.folds - 1}]", self.fold)
        require(0 < self.batch_size <= MAX_BATCH, "data.batch_size", f"must be in [1, {MAX_BATCH}]", self.batch_size)
        require(
            0 < self.eval_batch_size <= MAX_BATCH,
            "data.eval_batch_size",
            f"must be in [1, {MAX_BATCH}]",
            self.eval_batch_size,
        )
        require(0 < self.val_size < MAX_BATCH, "data.val_size", f"must be in [1, {MAX_BATCH})", self.val_size)
        require(self.std > 0, "data.std", "must be positive", self.std)


@dataclass
class NetConfig:
    """model.net: a network's constructor arguments (mnistlab.models)."""

    _target_: str = MISSING
    num_classes: int = 10


@dataclass
class SoftmaxNetConfig(NetConfig):
    pass


@dataclass
class MLPNetConfig(NetConfig):
    hidden: List[int] = MISSING
    dropout: float = 0.0

    def __post_init__(self) -> None:
        require(all(h > 0 for h in self.hidden), "model.net.hidden", "must hold positive sizes", self.hidden)
        require(len(self.hidden) <= MAX_LAYERS, "model.net.hidden", f"may hold at most {MAX_LAYERS} layers", "...")
        check_dropout("model.net.dropout", self.dropout)


@dataclass
class CNNNetConfig(NetConfig):
    channels: List[int] = MISSING
    kernel_size: Any = 5  # one for all layers, or a list of one per layer
    fc_size: int = 1024
    dropout: float = 0.5
    batch_norm: bool = False
    padding: str = "same"  # or valid
    pool_first: bool = False  # conv-pool-norm-ReLU instead of conv-norm-ReLU-pool

    def __post_init__(self) -> None:
        require(
            len(self.channels) > 0 and all(c > 0 for c in self.channels),
            "model.net.channels",
            "must hold positive sizes",
            self.channels,
        )
        require(len(self.channels) <= MAX_LAYERS, "model.net.channels", f"may hold at most {MAX_LAYERS} layers", "...")
        require(self.padding in ("same", "valid"), "model.net.padding", "must be same or valid", self.padding)
        kernels = [self.kernel_size] if isinstance(self.kernel_size, int) else list(self.kernel_size)
        require(
            all(isinstance(k, int) and k > 0 and (k % 2 == 1 or self.padding == "valid") for k in kernels)
            and (isinstance(self.kernel_size, int) or len(kernels) == len(self.channels)),
            "model.net.kernel_size",
            "must be a positive odd integer (any size with padding valid), or a list of one per channels entry",
            self.kernel_size,
        )
        require(self.fc_size > 0, "model.net.fc_size", "must be a positive integer", self.fc_size)
        check_dropout("model.net.dropout", self.dropout)


@dataclass
class LSTMNetConfig(NetConfig):
    hidden_size: int = 128
    input_proj: Optional[int] = None
    cell: str = "lstm"
    num_layers: int = 1
    bidirectional: bool = False
    forget_bias: Optional[float] = None
    dropout: float = 0.0

    def __post_init__(self) -> None:
        check_dropout("model.net.dropout", self.dropout)
        require(self.hidden_size > 0, "model.net.hidden_size", "must be a positive integer", self.hidden_size)
        require(
            self.input_proj is None or self.input_proj > 0,
            "model.net.input_proj",
            "must be null or a positive integer",
            self.input_proj,
        )
        require(self.cell in ("lstm", "gru"), "model.net.cell", "must be lstm or gru", self.cell)
        require(
            0 < self.num_layers <= MAX_LAYERS, "model.net.num_layers", f"must be in [1, {MAX_LAYERS}]", self.num_layers
        )
        require(
            self.forget_bias is None or self.cell == "lstm",
            "model.net.forget_bias",
            "only applies to cell=lstm",
            self.forget_bias,
        )


@dataclass
class ClassifierConfig:
    """conf/model/<name>.yaml: the arguments of the LightningModule, mnistlab.training.classifier.Classifier.

    It builds its network (net), optimizer and scheduler itself from these plain values, which it keeps as
    its hyperparameters (_recursive_: false), so that checkpoints load weights-only. optimizer, scheduler,
    ema, mean and std come from conf/train.yaml (${optimizer}, ..., ${data.mean}) for every model."""

    _target_: str = "mnistlab.training.classifier.Classifier"
    _recursive_: bool = False
    net: Any = MISSING
    l2: float = 0.0  # penalty l2 * sum(w**2) / 2 on weights only, as TF's l2_regularizer
    label_smoothing: float = 0.0  # of the training loss (validation and test losses stay plain)
    init: str = "default"  # default (PyTorch's) | normal | trunc_normal, for linear and conv layers
    init_std: float = 0.1
    init_bias: float = 0.0
    optimizer: Any = MISSING
    scheduler: Any = None
    ema: Any = None
    mean: float = 0.0
    std: float = 1.0

    def __post_init__(self) -> None:
        require(self.l2 >= 0, "model.l2", "must be >= 0", self.l2)
        require(0 <= self.label_smoothing < 1, "model.label_smoothing", "must be in [0, 1)", self.label_smoothing)
        require(
            self.init in ("default", "normal", "trunc_normal"),
            "model.init",
            "must be one of default, normal, trunc_normal",
            self.init,
        )
        require(self.init_std > 0, "model.init_std", "must be positive", self.init_std)
        require(self.std > 0, "model.std", "must be positive", self.std)


@dataclass
class SoftmaxConfig(ClassifierConfig):
    net: SoftmaxNetConfig = MISSING


@dataclass
class MLPConfig(ClassifierConfig):
    net: MLPNetConfig = MISSING


@dataclass
class CNNConfig(ClassifierConfig):
    net: CNNNetConfig = MISSING


@dataclass
class LSTMConfig(ClassifierConfig):
    net: LSTMNetConfig = MISSING


@dataclass
class OptimizerConfig:
    _target_: str = MISSING
    _partial_: bool = True
    lr: float = MISSING
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        require(self.lr > 0, "optimizer.lr", "must be positive", self.lr)
        require(self.weight_decay >= 0, "optimizer.weight_decay", "must be >= 0", self.weight_decay)


@dataclass
class AdamConfig(OptimizerConfig):
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    fused: Optional[bool] = None  # torch's own default (None): its per-parameter loop on a CPU

    def __post_init__(self) -> None:
        super().__post_init__()
        require(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            "optimizer.betas",
            "must be two values in [0, 1)",
            self.betas,
        )


@dataclass
class SGDConfig(OptimizerConfig):
    momentum: float = 0.0
    nesterov: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        require(0 <= self.momentum < 1, "optimizer.momentum", "must be in [0, 1)", self.momentum)


@dataclass
class ExponentialDecayConfig:
    _target_: str = "mnistlab.training.schedulers.exponential_decay"
    _partial_: bool = True
    rate: float = 0.99
    decay_steps: Optional[int] = None  # null: one epoch
    staircase: bool = True

    def __post_init__(self) -> None:
        require(0 < self.rate <= 1, "scheduler.rate", "must be in (0, 1]", self.rate)
        require(
            self.decay_steps is None or self.decay_steps > 0,
            "scheduler.decay_steps",
            "must be null or a positive integer",
            self.decay_steps,
        )


@dataclass
class CosineConfig:
    _target_: str = "mnistlab.training.schedulers.cosine"
    _partial_: bool = True
    warmup_steps: int = 0
    final_factor: float = 0.0

    def __post_init__(self) -> None:
        require(self.warmup_steps >= 0, "scheduler.warmup_steps", "must be >= 0", self.warmup_steps)
        require(0 <= self.final_factor <= 1, "scheduler.final_factor", "must be in [0, 1]", self.final_factor)


@dataclass
class OneCycleConfig:
    _target_: str = "mnistlab.training.schedulers.one_cycle"
    _partial_: bool = True
    pct_start: float = 0.25
    div_factor: float = 25.0
    final_div_factor: float = 1e4

    def __post_init__(self) -> None:
        require(0 < self.pct_start < 1, "scheduler.pct_start", "must be in (0, 1)", self.pct_start)
        require(self.div_factor >= 1, "scheduler.div_factor", "must be >= 1", self.div_factor)
        require(self.final_div_factor >= 1, "scheduler.final_div_factor", "must be >= 1", self.final_div_factor)


@dataclass
class EMAConfig:
    enabled: bool = False
    decay: float = 0.99

    def __post_init__(self) -> None:
        require(0 < self.decay < 1, "ema.decay", "must be in (0, 1)", self.decay)


@dataclass
class TrainConfig:
    """Top level of conf/train.yaml; groups without a schema stay untyped."""

    model: Any = MISSING  # the LightningModule (conf/model/)
    optimizer: Any = MISSING
    scheduler: Any = None
    data: Any = MISSING  # the LightningDataModule (conf/data/)
    ema: EMAConfig = field(default_factory=EMAConfig)
    trainer: Any = MISSING
    callbacks: Any = None
    logger: Any = None
    paths: Any = None
    seed: Optional[int] = 42
    threads: Optional[int] = None  # torch CPU threads; null = torch's default (all cores)
    compile: bool = False  # torch.compile the network
    fast_loop: bool = True  # mnistlab.compat.fast_loop's training step instead of Lightning's own (same results)
    ckpt_path: Optional[str] = None
    resume: Optional[str] = None  # a run directory: continue it (see mnistlab.runs.resume)
    report: bool = True  # report.png and report.md in the run directory (mnistlab.runs.report)
    trusted_modules: List[str] = field(default_factory=list)  # the command line's only: never a saved one's
    max_parameters: int = DEFAULT_MAX_PARAMETERS  # the largest network a checkpoint may build

    def __post_init__(self) -> None:
        require(self.threads is None or self.threads > 0, "threads", "must be null or a positive integer", self.threads)
        check_trusted_modules(self.trusted_modules)
        check_max_parameters(self.max_parameters)


SCHEMAS = {
    "data": {"mnist": DataConfig},
    "model": {
        "classifier": ClassifierConfig,  # any network: /schema/model/classifier@_here_ in a model of your own
        "softmax": SoftmaxConfig,
        "mlp": MLPConfig,
        "cnn": CNNConfig,
        "lstm": LSTMConfig,
    },
    "optimizer": {"adam": AdamConfig, "sgd": SGDConfig},
    "scheduler": {"exponential": ExponentialDecayConfig, "cosine": CosineConfig, "one_cycle": OneCycleConfig},
}


def register_schemas() -> None:
    """Store the schemas where the YAML files' defaults lists find them (`/schema/<group>/<name>`)."""
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainConfig)
    for group, schemas in SCHEMAS.items():
        for name, node in schemas.items():
            store.store(group=f"schema/{group}", name=name, node=node)


def validate(cfg: DictConfig) -> None:
    """Check every value range; raises ConfigError with a one-line message."""
    try:
        OmegaConf.to_object(cfg)  # builds the dataclasses, which runs their __post_init__ checks
    except ConfigError:
        raise
    except Exception as err:  # an interpolation or a missing value
        raise ConfigError(str(err).splitlines()[0]) from err
    check_run_length(cfg)


def check_run_length(cfg: DictConfig) -> None:
    """max_epochs=-1 trains without end: a learning-rate schedule, spread over the run's steps, needs max_steps."""
    trainer, model = cfg.get("trainer") or {}, cfg.get("model") or {}
    if trainer.get("max_epochs") == -1 and trainer.get("max_steps", -1) in (-1, None) and model.get("scheduler"):
        raise ConfigError(
            "trainer.max_epochs=-1 trains without end, and the learning-rate schedule needs the run's length: "
            "set trainer.max_steps (e.g. trainer.max_steps=20000), or scheduler=none"
        )
