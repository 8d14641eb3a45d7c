"""Hydra sweep overrides as Optuna distributions, and an Optuna trial's values as overrides again.

choice(a, b, ...) and glob(...)  -> categorical
range(start, stop, step)         -> integers (or floats) on that grid; stop is excluded, as in Python
interval(low, high)              -> uniform floats (integers: range)
tag(log, interval(low, high))    -> log-uniform
Anything that is not a sweep is passed unchanged to every trial.
"""

from typing import Dict, List, Tuple

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, Transformer

from mnistlab.errors import ConfigError


def distribution(override: Override):
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if override.is_choice_sweep():  # glob() too
        return CategoricalDistribution(list(override.sweep_iterator(transformer=Transformer.encode)))
    if override.is_range_sweep():
        values = list(override.sweep_iterator(transformer=Transformer.identity))
        sweep = override.value()
        if sweep.shuffle or len(values) < 2:
            return CategoricalDistribution(values)
        if all(isinstance(v, int) for v in values):
            return IntDistribution(min(values), max(values), step=abs(int(sweep.step)))
        return FloatDistribution(min(values), max(values), step=abs(float(sweep.step)))
    if override.is_interval_sweep():
        sweep = override.value()  # Hydra makes both ends floats
        return FloatDistribution(float(sweep.start), float(sweep.end), log="log" in sweep.tags)
    raise ConfigError(f"{override.input_line}: Optuna cannot sample this kind of sweep")


def split(arguments: List[str], config_loader) -> Tuple[Dict[str, object], List[str]]:
    """{override key: distribution} for the sweeps, and the other overrides as typed."""
    parser = OverridesParser.create(config_loader=config_loader)
    space: Dict[str, object] = {}
    fixed: Dict[str, str] = {}
    for override in parser.parse_overrides(arguments):
        key = override.get_key_element()
        space.pop(key, None)
        fixed.pop(key, None)  # a later override of the same key (the command line) wins
        if not override.is_sweep_override():
            fixed[key] = override.input_line or f"{key}={override.get_value_element_as_str()}"
            continue
        try:
            space[key] = distribution(override)
        except ValueError as err:  # Optuna's checks, e.g. a log scale that starts at 0
            raise ConfigError(f"{override.input_line}: {err}") from err
    return space, list(fixed.values())


def as_overrides(params: Dict[str, object]) -> List[str]:
    """Strings are choices as they were typed (lists and quoted strings included): passed on unchanged."""
    return [f"{key}={value if isinstance(value, str) else Transformer.str(value)}" for key, value in params.items()]
