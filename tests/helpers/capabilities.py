"""Skip a test that needs what this machine cannot do, with the reason (mnistlab.training.precision's probes)."""

import pytest

from mnistlab.training.precision import cpu_failure


def skip_unless_cpu_trains(precision: str, *layers: type) -> None:
    """pytest.skip, naming the CPU's error, when a tiny layer of each kind cannot train in `precision` here
    (a bf16 LSTM where the CPU lacks AVX512-BF16)."""
    for layer in layers:
        failure = cpu_failure(layer, precision)
        if failure is not None:
            pytest.skip(f"this CPU cannot train {layer.__name__} layers in {precision}: {failure}")
