"""What a sweep optimises: one metric and its direction, or several (a multi-objective study), e.g.
metric: [val/acc, model/parameters], direction: [maximize, minimize]."""

from dataclasses import dataclass
from typing import Any, List, Mapping, Optional, Sequence, Tuple

from mnistlab.errors import ConfigError
from mnistlab.sweeps.records import finite

DIRECTIONS = ("maximize", "minimize")


def as_list(value: Any) -> List[Any]:
    """A setting given as one value or as a list (an OmegaConf ListConfig too)."""
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]


@dataclass(frozen=True)
class Objectives:
    metrics: Tuple[str, ...]
    directions: Tuple[str, ...]

    @classmethod
    def of(cls, metric: Any, direction: Any, prefix: str = "hydra.sweeper.") -> "Objectives":
        """From hydra.sweeper.metric and direction: both single values, or lists of the same length (a single
        direction applies to every metric). Raises ConfigError, naming the settings with `prefix`."""
        metrics, directions = as_list(metric), as_list(direction)
        if not metrics or not all(isinstance(m, str) and m for m in metrics):
            raise ConfigError(f"{prefix}metric must be a metric name or a list of them, got {metric!r}")
        if len(set(metrics)) < len(metrics):
            raise ConfigError(f"{prefix}metric names a metric twice: {metrics}")
        if len(directions) == 1:
            directions = directions * len(metrics)
        if len(directions) != len(metrics):
            raise ConfigError(
                f"{prefix}direction needs one direction per metric: {len(metrics)} metrics, got {directions}"
            )
        for value in directions:
            if value not in DIRECTIONS:
                raise ConfigError(f"{prefix}direction must be maximize or minimize, got {value!r}")
        return cls(tuple(metrics), tuple(directions))

    @property
    def multi(self) -> bool:
        return len(self.metrics) > 1

    @property
    def names(self) -> str:
        return " and ".join(self.metrics)

    def __str__(self) -> str:
        return ", ".join(f"{direction} {metric}" for metric, direction in zip(self.metrics, self.directions))

    def values(self, metrics: Mapping) -> Optional[List[float]]:
        """Each objective's finite value in a job's metrics, or None if one is missing."""
        values = [finite(metrics.get(name)) for name in self.metrics]
        return None if any(value is None for value in values) else values

    def dominates(self, a: Sequence[float], b: Sequence[float]) -> bool:
        """a is at least as good as b in every objective and better in one."""
        signs = [1.0 if direction == "maximize" else -1.0 for direction in self.directions]
        better = [s * x > s * y for s, x, y in zip(signs, a, b)]
        worse = [s * x < s * y for s, x, y in zip(signs, a, b)]
        return any(better) and not any(worse)

    def front(self, points: List[Sequence[float]]) -> List[int]:
        """Indices of the points no other point dominates (the Pareto front), in their order."""
        return [i for i, p in enumerate(points) if not any(self.dominates(q, p) for q in points)]


def shown_value(value: float) -> str:
    """A metric as printed: counts (parameters) as integers, rates with four decimals."""
    return f"{int(value)}" if float(value).is_integer() and abs(value) >= 100 else f"{value:.4f}"
