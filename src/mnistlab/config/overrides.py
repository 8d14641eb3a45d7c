"""What identifies a run by its command line: its overrides as values, less how it was pointed at a folder."""

import json
from typing import FrozenSet, List, Tuple

RUN_POINTERS = ("resume", "ckpt_path")  # where a run continues from: how it was run, not what it is


def job_key(overrides: List[str]) -> FrozenSet[Tuple[str, str]]:
    """What identifies a job: its overrides as (key, value) pairs, values compared as parsed values."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    pairs = set()
    for override in OverridesParser.create().parse_overrides([str(item) for item in overrides]):
        key = override.get_key_element()
        if key.lstrip("+~") in RUN_POINTERS or key.startswith("hydra."):
            continue
        value = None if override.is_delete() else override.value()
        pairs.add((key, json.dumps(value, sort_keys=True, default=str)))
    return frozenset(pairs)
