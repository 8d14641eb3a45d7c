"""A run's config composed once, where Hydra composes it twice.

To start a run, Hydra composes the config once to read `hydra.mode` (Hydra.get_mode, which may turn a run into a
multirun) and then again, from scratch, to run it (Hydra.run): 0.2-0.4 s each on 2 cores, the largest part of
what mnistlab adds to a run's start-up (docs/performance.md). `composing_once` reads the mode from the
composition the run needs and hands that composition to the run, so a run composes once.

Exact by construction: the first composition is the run's own (RUN mode, the same overrides), and the one
override Hydra adds in between (`hydra.mode=RUN`, when no config sets the mode) is applied to it as Hydra's
composing applies a command-line override, last. Anything else composes as Hydra does: a multirun (its
composition is in MULTIRUN mode), sweep values on the command line, and a config that does not compose as a run
(Hydra's own get_mode runs then, and the run's composition reports the error). tests/test_hydra_compose.py
compares what the task gets, and the files written, with Hydra's own two compositions.

Checked with hydra-core 1.3 (pyproject.toml pins <1.4). Fallback: where the methods are not found, Hydra
composes twice.
"""

from contextlib import contextmanager
from typing import Iterator

RUN_MODE_OVERRIDE = "hydra.mode=RUN"  # what hydra._internal.utils._run_app adds for a run whose mode no config set


@contextmanager
def composing_once() -> Iterator[None]:
    """Within it, a Hydra run composes its config once (two methods of Hydra's are wrapped, then restored)."""
    try:  # Hydra has no public hook between reading the mode and composing the run: its methods are wrapped
        from hydra._internal.config_loader_impl import ConfigLoaderImpl
        from hydra._internal.hydra import Hydra
        from hydra.core.override_parser.overrides_parser import OverridesParser
        from hydra.types import RunMode

        original_get_mode, original_compose = Hydra.get_mode, Hydra.compose_config
        apply_overrides = ConfigLoaderImpl._apply_overrides_to_config  # how composing applies a command-line override
    except (ImportError, AttributeError):
        yield
        return

    def get_mode(self, config_name, overrides):
        try:
            parsed = OverridesParser.create().parse_overrides(overrides=overrides)
            sweeps = any(override.is_sweep_override() for override in parsed)  # a multirun's, or refused in a run
            cfg = None if sweeps else original_compose(self, config_name, list(overrides), run_mode=RunMode.RUN)
        except Exception:  # the run's composing reports it
            cfg = None
        if cfg is None:  # Hydra's own answer (it composes as a multirun would)
            return original_get_mode(self, config_name, overrides)
        mode, run_overrides = cfg.hydra.mode, list(overrides)
        if mode is None:  # the run's composition will have Hydra's added override: applied here, last, as there
            added = OverridesParser.create().parse_overrides(overrides=[RUN_MODE_OVERRIDE])
            apply_overrides(added, cfg)
            cfg.hydra.overrides.hydra.append(RUN_MODE_OVERRIDE)
            run_overrides.append(RUN_MODE_OVERRIDE)
        self.composed_run = (config_name, run_overrides, cfg) if cfg.hydra.mode == RunMode.RUN else None
        return mode

    def compose_config(self, config_name, overrides, run_mode, *more, **options):
        kept, self.composed_run = getattr(self, "composed_run", None), None
        runs = run_mode == RunMode.RUN and not more and set(options) == {"with_log_configuration"}  # Hydra.run's call
        if kept is None or not runs or kept[:2] != (config_name, list(overrides)):  # any other composes afresh
            return original_compose(self, config_name, overrides, run_mode, *more, **options)
        loader = self.config_loader

        def load_configuration(**_):  # once: Hydra's own logging set-up runs around it
            del loader.load_configuration
            return kept[2]

        loader.load_configuration = load_configuration
        try:
            return original_compose(self, config_name, overrides, run_mode=run_mode, **options)
        finally:
            loader.__dict__.pop("load_configuration", None)

    Hydra.get_mode, Hydra.compose_config = get_mode, compose_config
    try:
        yield
    finally:
        Hydra.get_mode, Hydra.compose_config = original_get_mode, original_compose
