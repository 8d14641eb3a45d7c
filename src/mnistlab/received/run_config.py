"""A run folder's saved config (<run>/.hydra/config.yaml) as one plain, resolved, checked container.

It is parsed without aliases or tags (mnistlab.received.yaml_file), its `paths` replaced by the ones the command
line gives (where the run is now), and resolved once, here: only references to other keys (`${optimizer}`,
`${data.mean}`) and `${oc.select:<key>,<default>}` may appear, so resolving runs no resolver with side effects,
and what comes out holds no interpolation left to resolve again. That container is what is checked (the
`_target_` allowlist, the typed schemas, paths of callbacks, loggers and the trainer inside the run folder) and
what is built.
"""

import os
import re
from pathlib import Path
from typing import Callable, Iterable, Optional

from mnistlab.errors import ReceivedFileError
from mnistlab.received.schemas import check_run_sections
from mnistlab.received.yaml_file import read_yaml
from mnistlab.settings.targets import check_targets
from mnistlab.settings.upgrade import upgrade_run_config

SAVED_CONFIG = Path(".hydra") / "config.yaml"
KEY = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*"
PURE_INTERPOLATION = re.compile(rf"\$\{{(?:{KEY}|oc\.select:{KEY}(?:,[A-Za-z0-9_.\-]*)?)\}}")
REFERENCE = re.compile(rf"\$\{{(?:oc\.select:)?({KEY})")
MAX_RESOLVED_VALUES = 100_000  # values after resolving: references to references could multiply them

# Arguments of the trainer, callbacks, loggers and profilers that name where they write: inside the run folder only
WRITE_LOCATIONS = {"dirpath", "save_dir", "default_root_dir", "root_dir", "log_dir", "dir", "tracking_uri"}
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")


def strings(node, where: str = ""):
    """(key path, string) of every string at any depth."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from strings(value, f"{where}.{key}" if where else key)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from strings(value, f"{where}[{index}]")
    elif isinstance(node, str):
        yield where, node


def keys(node, where: str = ""):
    """The path of every key at any depth."""
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{where}.{key}" if where else key
            yield path
            yield from keys(value, path)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from keys(value, f"{where}[{index}]")


def check_interpolations(config: dict, source) -> None:
    for where, text in strings(config):
        if "${" in PURE_INTERPOLATION.sub("", text) or "\\$" in text:
            raise ReceivedFileError(
                f"{source}: {where} holds an interpolation other than a reference to another key "
                f"({text[:80]!r}); a saved config is not resolved with resolvers"
            )


def select(config, key: str):
    node = config
    for part in key.split("."):
        if isinstance(node, list) and part.isdecimal() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return None
    return node


def expanded_size(config: dict, source) -> int:
    """How many values resolving would make, counted without making them (memoised per key)."""
    sizes: dict = {}

    def size(node, seen: tuple) -> int:
        if isinstance(node, dict):
            return 1 + sum(size(value, seen) for value in node.values())
        if isinstance(node, list):
            return 1 + sum(size(value, seen) for value in node)
        if isinstance(node, str) and "${" in node:
            total = 1
            for key in REFERENCE.findall(node):
                if key in seen:
                    raise ReceivedFileError(f"{source}: {key} refers to itself")
                if key not in sizes:
                    sizes[key] = size(select(config, key), seen + (key,))
                total += sizes[key]
                if total > MAX_RESOLVED_VALUES:
                    break
            return total
        return 1

    total = size(config, ())
    if total > MAX_RESOLVED_VALUES:
        raise ReceivedFileError(f"{source}: its references would expand to over {MAX_RESOLVED_VALUES} values")
    return total


def resolve_once(config: dict, source) -> dict:
    from omegaconf import OmegaConf

    check_interpolations(config, source)
    expanded_size(config, source)
    try:
        resolved = OmegaConf.to_container(OmegaConf.create(config), resolve=True)
    except Exception as err:  # a reference to a missing key, a cycle: OmegaConf's many errors
        raise ReceivedFileError(f"{source} refused: {str(err).splitlines()[0][:200]}") from None
    for where, text in strings(resolved):
        if "${" in text:  # an escaped one: built from this container, it would be resolved again
            raise ReceivedFileError(f"{source}: {where} would still hold an interpolation after resolving")
    return resolved


def inside(path: str, folder: Path) -> bool:
    """`path` (as the run would use it, relative to the working directory) is `folder` or below it."""
    if SCHEME.match(path) or "\x00" in path:
        return False
    real, root = os.path.realpath(path), os.path.realpath(folder)
    return real == root or real.startswith(root + os.sep)


FORMAT_FIELD = re.compile(r"\{[A-Za-z_][A-Za-z0-9_/]*(?::[-+ #0-9.,_<>=^a-zA-Z%]*)?\}")  # {epoch:03d}, {val/acc}


def harmless_name(text: str) -> bool:
    """A string that, joined to a folder, stays in it: not absolute, no `..`, no scheme, no home; and with
    `{...}` only as plain format fields (Lightning formats file names: `{x.__globals__[...]}` could reach
    anything, `os.sep` included)."""
    literal = FORMAT_FIELD.sub("0", text)
    parts = Path(literal).parts
    return not (
        literal.startswith(("/", "~"))
        or ".." in parts
        or SCHEME.match(literal)
        or "\x00" in literal
        or "{" in literal
        or "}" in literal
    )


def check_write_locations(config: dict, run_dir: Path, source) -> None:
    """Where the trainer, callbacks, loggers and profiler write must be in the run folder: arguments naming a
    location (WRITE_LOCATIONS) resolve inside it, every other string argument is a harmless name."""
    sections = {"trainer": config.get("trainer"), "callbacks": config.get("callbacks"), "logger": config.get("logger")}
    for group in ("callbacks", "logger"):
        entries = sections[group] if sections[group] is not None else {}
        if not isinstance(entries, dict):
            raise ReceivedFileError(f"{source}: {group} must be a mapping of names to entries")
        for name, entry in entries.items():
            if entry is not None and not isinstance(entry, dict):
                raise ReceivedFileError(f"{source}: {group}.{name} must be a mapping or null")
            if group == "logger" and entry and not WRITE_LOCATIONS & set(entry):
                raise ReceivedFileError(  # else it writes where its library likes, e.g. the working directory
                    f"{source}: logger.{name} does not say where it writes (save_dir); refused"
                )
    for where in keys(sections):
        if where.endswith("._args_"):
            raise ReceivedFileError(f"{source}: {where}: positional arguments are not taken from a saved config")
    for where, text in strings(sections):
        if where.endswith("._target_"):
            continue
        key = re.split(r"[.\[]", where)[-1]
        ok = inside(text, run_dir) if key in WRITE_LOCATIONS else harmless_name(text)
        # MLflow's local store, relative to where train.py starts, as its artifact_location is
        ok = ok or (
            # plain characters only: SQLAlchemy decodes %2F and %2e after this check, and reads ?query options
            key == "tracking_uri"
            and re.fullmatch(r"sqlite:///[A-Za-z0-9_./-]+", text) is not None
            and harmless_name(text[len("sqlite:///") :])
        )
        if not ok:
            raise ReceivedFileError(
                f"{source}: {where}={text[:80]!r} would write outside the run folder {run_dir}; refused"
            )


def read_run_config(
    run_dir: Path,
    paths: Optional[dict] = None,
    trusted_modules: Iterable[str] = (),
    for_training: bool = False,
    overrides: Optional[Callable[[dict], dict]] = None,
) -> dict:
    """The run's saved config, resolved once and checked. `paths`: the command line's (where the run is now);
    by default {output_dir: run_dir}. for_training: also the trainer, callbacks and loggers are checked (they
    will be built), not only the data module and the model. overrides: the command line's changes, made to
    the unresolved config (so that, say, `+callbacks.x=null` drops an entry before it is checked)."""

    source = Path(run_dir) / SAVED_CONFIG
    config = upgrade_run_config(read_yaml(source))
    config["paths"] = dict(paths) if paths is not None else {"output_dir": str(run_dir)}
    if isinstance(config.get("data"), dict) and "download" in config["data"]:
        config["data"]["download"] = False  # a file never makes mnistlab write data where it says (data.download=true)
    config.pop("hydra", None)  # Hydra's own settings are never taken from a run folder
    if overrides is not None:
        config = overrides(config)
    kinds = "run" if for_training else "data"
    section = config if for_training else {"data": config.get("data")}
    check_targets(section, trusted_modules, source=str(source), kinds=kinds, unresolved=True)  # a first look
    config = resolve_once(config, source)
    if for_training:  # all of it is built
        check_targets(config, trusted_modules, source=str(source), kinds="run")
        check_write_locations(config, Path(config["paths"]["output_dir"]), source)
    else:  # the tools build its data module only
        check_targets({"data": config.get("data")}, trusted_modules, source=str(source), kinds="data")
    check_run_sections(config, source, trusted_modules)
    return config
