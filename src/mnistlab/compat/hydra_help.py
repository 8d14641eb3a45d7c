"""A faster `--help` for the entry scripts: Hydra's own, with its config-group listing memoised.

Hydra lists the config groups by asking for each group's options several times, and each ask deep-copies
the whole config repository (our typed schemas included): those copies are most of the time `--help` takes.
Nothing changes the repository while the help is written, so each answer is kept. The typed schemas' own
groups (schema/...) are left out of the listing: they are not choices to make.

Checked with hydra-core 1.3 (pyproject.toml pins <1.4). Fallback: where the class or its methods are not found,
Hydra's own `--help` runs, slower and with the schema groups listed.
"""

import functools


def speed_up_help() -> None:
    # the class whose group listing --help calls: Hydra has no public hook into it, so its methods are wrapped
    try:
        from hydra._internal.config_loader_impl import ConfigLoaderImpl

        ConfigLoaderImpl.get_group_options, ConfigLoaderImpl.list_groups  # noqa: B018  (both still there)
    except (ImportError, AttributeError):
        return
    if getattr(ConfigLoaderImpl.get_group_options, "memoised", False):
        return
    original_options, original_groups = ConfigLoaderImpl.get_group_options, ConfigLoaderImpl.list_groups
    answers: dict = {}

    @functools.wraps(original_options)
    def get_group_options(self, group_name, results_filter=None, config_name=None, overrides=None):
        from hydra.core.object_type import ObjectType

        results_filter = ObjectType.CONFIG if results_filter is None else results_filter
        key = (id(self), group_name, results_filter, config_name, tuple(overrides or ()))
        if key not in answers:
            answers[key] = original_options(self, group_name, results_filter, config_name, overrides)
        return list(answers[key])

    @functools.wraps(original_groups)
    def list_groups(self, parent_name):
        groups = original_groups(self, parent_name)
        return [group for group in groups if not (parent_name == "" and group == "schema")]

    get_group_options.memoised = True
    ConfigLoaderImpl.get_group_options, ConfigLoaderImpl.list_groups = get_group_options, list_groups
