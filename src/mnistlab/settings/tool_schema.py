"""Typed schemas of the configs of eval.py, export.py and predict.py (conf/<tool>.yaml).

Like schema.py: types are checked while Hydra composes, ranges by `validate`. Imports nothing heavy.
"""

from dataclasses import dataclass, field
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from mnistlab.settings.limits import DEFAULT_MAX_PARAMETERS
from mnistlab.settings.schema import check_max_parameters, check_trusted_modules, require


@dataclass
class WatchConfig:
    enabled: bool = False
    interval: float = 10.0
    timeout: Optional[float] = None

    def __post_init__(self) -> None:
        require(self.interval > 0, "watch.interval", "must be positive (seconds)", self.interval)
        require(
            self.timeout is None or self.timeout > 0,
            "watch.timeout",
            "must be null or positive (seconds)",
            self.timeout,
        )


@dataclass
class ToolDataConfig:
    data_dir: Optional[str] = None  # spelled data.data_dir, as in train.py


@dataclass
class EvalConfig:
    ckpt_path: str = MISSING
    split: str = "test"
    data: ToolDataConfig = field(default_factory=ToolDataConfig)
    output: Optional[str] = None
    threads: Optional[int] = None
    trusted_modules: List[str] = field(default_factory=list)  # see mnistlab.settings.targets
    max_parameters: int = DEFAULT_MAX_PARAMETERS  # the largest network a checkpoint may build
    watch: WatchConfig = field(default_factory=WatchConfig)

    def __post_init__(self) -> None:
        check_trusted_modules(self.trusted_modules)
        check_max_parameters(self.max_parameters)
        require(self.split in ("test", "val"), "split", "must be test or val", self.split)
        require(self.threads is None or self.threads > 0, "threads", "must be null or a positive integer", self.threads)


@dataclass
class ExportConfig:
    ckpt_path: str = MISSING
    format: str = "torchscript"
    output: Optional[str] = None
    data: ToolDataConfig = field(default_factory=ToolDataConfig)
    check_images: int = 256
    tolerance: float = 1e-4
    threads: Optional[int] = None
    trusted_modules: List[str] = field(default_factory=list)  # see mnistlab.settings.targets
    max_parameters: int = DEFAULT_MAX_PARAMETERS  # the largest network a checkpoint may build

    def __post_init__(self) -> None:
        check_trusted_modules(self.trusted_modules)
        check_max_parameters(self.max_parameters)
        require(self.format in ("torchscript", "onnx"), "format", "must be torchscript or onnx", self.format)
        require(self.check_images > 0, "check_images", "must be a positive integer", self.check_images)
        require(self.tolerance > 0, "tolerance", "must be positive", self.tolerance)


@dataclass
class PredictConfig:
    ckpt_path: str = MISSING
    images: Any = MISSING  # a path or glob, or a list of them
    top_k: int = 1
    invert: Optional[bool] = None  # null: detect a light background and invert
    threads: Optional[int] = None
    trusted_modules: List[str] = field(default_factory=list)  # see mnistlab.settings.targets
    max_parameters: int = DEFAULT_MAX_PARAMETERS  # the largest network a checkpoint may build
    torchscript: bool = False  # run a TorchScript file: a program, not data (docs/security.md)

    def __post_init__(self) -> None:
        check_trusted_modules(self.trusted_modules)
        check_max_parameters(self.max_parameters)
        require(1 <= self.top_k <= 10, "top_k", "must be between 1 and 10", self.top_k)


def register_tool_schemas() -> None:
    store = ConfigStore.instance()
    for name, node in (("eval", EvalConfig), ("export", ExportConfig), ("predict", PredictConfig)):
        store.store(name=f"{name}_schema", node=node)
