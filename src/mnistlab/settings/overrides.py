"""What identifies a run by its command line: its overrides as values, less how it was pointed at a folder."""

import json
import re
from typing import FrozenSet, List, Optional, Tuple

from hydra.core.override_parser.overrides_parser import OverridesParser

from mnistlab.errors import UserError

RUN_POINTERS = ("resume", "ckpt_path")  # where a run continues from: how it was run, not what it is
PRUNING_CALLBACK = "optuna_pruning"  # callbacks.<this>: the Optuna sweeper's link from a job to its trial


def job_key(overrides: List[str]) -> FrozenSet[Tuple[str, str]]:
    """What identifies a job: its overrides as (key, value) pairs, values compared as parsed values."""
    pairs = set()
    for override in OverridesParser.create().parse_overrides([str(item) for item in overrides]):
        key = override.get_key_element()
        if key.lstrip("+~") in RUN_POINTERS or key.startswith("hydra."):
            continue
        value = None if override.is_delete() else override.value()
        pairs.add((key, json.dumps(value, sort_keys=True, default=str)))
    return frozenset(pairs)


def argument(argv: List[str], key: str) -> Optional[str]:
    """The value of a `key=value` command-line override, if given (Hydra's quotes removed)."""
    values = [arg.split("=", 1)[1] for arg in argv if arg.startswith(f"{key}=")]
    if not values:
        return None
    value = values[-1]
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1].replace(f"\\{value[0]}", value[0]).replace("\\\\", "\\")
    return value


def quoted(value: str) -> str:
    """A Hydra override value that keeps any path intact (spaces, '=', quotes, backslashes). Hydra resolves `${...}`
    even in quotes: such a path is refused, never handed on to be read as an interpolation."""
    if "${" in value:
        raise UserError(f"{value}: Hydra would read '${{...}}' in this path as an interpolation; rename it")
    # Hydra takes backslashes literally, except a run of them before a quote or the closing quote: those doubled
    escaped = re.sub(r"(\\+)(?='|$)", lambda run: run.group(1) * 2, value)
    return "'" + escaped.replace("'", "\\'") + "'"
