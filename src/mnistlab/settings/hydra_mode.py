"""Whether this process runs a job of a sweep (`-m`): a sweep's job raises where a single run exits."""

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
