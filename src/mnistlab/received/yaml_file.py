"""YAML of a received file as plain data: no anchors or aliases (a few hundred bytes of them can expand to
gigabytes), no tags (`!!python/...`), bounded size and depth. Only strings, numbers, booleans, null, lists and
dicts with string keys come out."""

import math

import yaml

from mnistlab.errors import ReceivedFileError
from mnistlab.received.files import read_text
from mnistlab.settings.limits import MAX_TEXT_BYTES, MAX_YAML_DEPTH

PLAIN_TAGS = {f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "seq", "map")}


def check_events(text: str, source) -> None:
    """Refuse aliases, anchors, explicit tags and deep nesting before anything is built."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            line = event.start_mark.line + 1
            raise ReceivedFileError(f"{source}: YAML anchors and aliases are not read (line {line})")
        tag = getattr(event, "tag", None)
        if tag is not None and tag not in PLAIN_TAGS and tag != "!":
            raise ReceivedFileError(f"{source}: YAML tag {tag!r} refused (line {event.start_mark.line + 1})")
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise ReceivedFileError(f"{source}: nested deeper than {MAX_YAML_DEPTH} levels")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def check_plain(node, source, where: str = "") -> None:
    """Only plain values: dict keys are strings, floats are finite, no dates or other objects."""
    if isinstance(node, dict):
        for key, value in node.items():
            if not isinstance(key, str):
                raise ReceivedFileError(f"{source}: key {key!r} under {where or 'the top'} is not a string")
            check_plain(value, source, f"{where}.{key}" if where else key)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            check_plain(value, source, f"{where}[{index}]")
    elif isinstance(node, float) and not math.isfinite(node):
        raise ReceivedFileError(f"{source}: {where} is {node}, not a finite number")
    elif not isinstance(node, (str, int, float, bool, type(None))):
        raise ReceivedFileError(f"{source}: {where} holds a {type(node).__name__}")


def parse_yaml(text: str, source):
    try:
        check_events(text, source)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ReceivedFileError(f"{source}: not valid YAML ({' '.join(str(err).split())[:200]})") from None
    except RecursionError:
        raise ReceivedFileError(f"{source}: nested too deeply") from None
    except ValueError as err:  # e.g. an integer of more digits than Python converts
        raise ReceivedFileError(f"{source}: not readable ({str(err)[:120]})") from None
    check_plain(data, source)
    return data


def read_yaml(path, expected: type = dict, limit: int = MAX_TEXT_BYTES):
    """The file's YAML as plain data of type `expected` (dict or list); an empty file is an empty one."""
    data = parse_yaml(read_text(path, limit), path)
    if data is None:
        data = expected()
    if not isinstance(data, expected):
        kind = "a mapping of keys to values" if expected is dict else "a list"
        raise ReceivedFileError(f"{path}: {kind} expected, found a {type(data).__name__}")
    return data
