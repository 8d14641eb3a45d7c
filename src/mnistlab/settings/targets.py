"""Which `_target_`s a config may make hydra.utils.instantiate build: a checkpoint or a saved run config
is data, and what it names is checked here before anything of it is imported or called.

A target must be exactly `<module>.<Name>`: <module> one of the modules of network_rules() (mnistlab's
networks and schedulers, torch.optim) or, for a run's saved config, run_rules() (also mnistlab's data
modules and Classifier, Lightning's trainer, callbacks, loggers and profilers), and Name an object of
the kind that rule expects; or
<module> inside a module the user trusts on the command line (`trusted_modules=[mypkg.nets]`, never
taken from the file itself), with Name defined there. The module part is compared as a whole: a
prefix check would let attribute chains through (`torch.optim.adam.torch.load` is torch.load).
Interpolations (`${oc.create:...}`) are refused too: instantiate resolves them, so they could build anything."""

import importlib
import importlib.util
import inspect
import pkgutil
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from mnistlab.compat.hydra import locate  # instantiate's own lookup
from mnistlab.errors import ConfigError, UnsafeConfigError

NETWORK_KINDS = "mnistlab.models networks, torch.optim optimizers, mnistlab.training.schedulers"
DATA_KINDS = "mnistlab.data's data modules"
RUN_KINDS = (
    f"{NETWORK_KINDS}, mnistlab.data's data modules, mnistlab.training.classifier.Classifier, "
    "lightning.pytorch.Trainer, Lightning's and mnistlab's callbacks, loggers, profilers, mnistlab's DDP strategy"
)


def subclass_of(module: str, name: str, defined_here: bool = False) -> Callable[[object, str], bool]:
    """A rule: a class derived from module.name (imported only when a target needs it), optionally
    defined in the target's own module (so not something that module merely imported)."""

    def rule(obj, where: str) -> bool:
        base = getattr(importlib.import_module(module), name)
        return inspect.isclass(obj) and issubclass(obj, base) and (not defined_here or obj.__module__ == where)

    return rule


def the_class(module: str, name: str) -> Callable[[object, str], bool]:
    return lambda obj, where: obj is getattr(importlib.import_module(module), name)


def defined_in_module(obj, where: str) -> bool:
    return (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == where


def modules_of(package: str) -> List[str]:
    """The modules of one of mnistlab's packages, found by name: none of them is imported."""
    return [info.name for info in pkgutil.iter_modules(importlib.util.find_spec(package).submodule_search_locations)]


def network_rules() -> Dict[str, Callable[[object, str], bool]]:
    """What a Classifier builds: its network, optimizer and scheduler."""
    rules = {
        f"mnistlab.models.{name}": subclass_of("torch.nn", "Module", defined_here=True)
        for name in modules_of("mnistlab.models")
    }
    rules["torch.optim"] = subclass_of("torch.optim", "Optimizer")
    rules["mnistlab.training.schedulers"] = defined_in_module
    return rules


def data_rules() -> Dict[str, Callable[[object, str], bool]]:
    """What the tools (eval, export, report) build from a run's saved config: its data module alone."""
    return {
        f"mnistlab.data.{name}": subclass_of("lightning.pytorch", "LightningDataModule", defined_here=True)
        for name in modules_of("mnistlab.data")
    }


def run_rules() -> Dict[str, Callable[[object, str], bool]]:
    """What a run's config builds besides: the data module (conf/data/), the LightningModule (conf/model/),
    the trainer, its callbacks, loggers and profiler (conf/)."""
    callback = ("lightning.pytorch.callbacks", "Callback")
    logger = ("lightning.pytorch.loggers", "Logger")
    profiler = ("lightning.pytorch.profilers", "Profiler")
    return {
        **network_rules(),
        **data_rules(),
        "mnistlab.training.classifier": subclass_of("lightning.pytorch", "LightningModule", defined_here=True),
        "lightning.pytorch": the_class("lightning.pytorch", "Trainer"),
        "lightning.pytorch.callbacks": subclass_of(*callback),
        "lightning.pytorch.loggers": subclass_of(*logger),
        "lightning.pytorch.profilers": subclass_of(*profiler),
        "mnistlab.callbacks.divergence": subclass_of(*callback, defined_here=True),
        "mnistlab.callbacks.progress": subclass_of(*callback, defined_here=True),
        "mnistlab.callbacks.csv_logger": subclass_of(*logger, defined_here=True),
        "mnistlab.callbacks.trackers": subclass_of(*logger, defined_here=True),
        "mnistlab.perf.profiler": subclass_of(*profiler, defined_here=True),
        "mnistlab.runs.ddp": subclass_of("lightning.pytorch.strategies", "Strategy", defined_here=True),
    }


def entries(node, where: str = "") -> Iterator[Tuple[str, object, bool]]:
    """(key path, value, is it a `_target_`) of every target and every string at any depth
    (instantiate is recursive: arguments, `_args_` lists and `_partial_` factories all count)."""
    if isinstance(node, dict):
        items = ((f"{where}.{key}" if where else str(key), value, key == "_target_") for key, value in node.items())
    elif isinstance(node, (list, tuple)):
        items = ((f"{where}[{index}]", value, False) for index, value in enumerate(node))
    else:
        return
    for path, value, is_target in items:
        if is_target or isinstance(value, str):
            yield path, value, is_target
        else:
            yield from entries(value, path)


def is_dotted_name(text: str) -> bool:
    return all(part.isidentifier() for part in text.split("."))


def under(module: str, trusted: Iterable[str]) -> bool:
    return any(module == root or module.startswith(root + ".") for root in trusted)


def refusal(target, rules: dict, trusted: Tuple[str, ...]) -> Optional[str]:
    """Why `target` may not be built, or None when it may. Imports only modules of RULES or trusted ones."""
    if not isinstance(target, str):
        return "not a dotted name"
    module, _, name = target.rpartition(".")
    if not module or not is_dotted_name(module) or not name.isidentifier() or name.startswith("_"):
        return "not a <module>.<Name> path"
    if module not in rules and not under(module, trusted):
        return f"{module} is neither allowed nor trusted"  # and so it is not imported

    try:
        obj = locate(target)
    except (ImportError, AttributeError, ValueError):
        return "it cannot be found there"
    if module in rules and rules[module](obj, module):
        return None
    defined_in = getattr(obj, "__module__", None) or ""
    if under(module, trusted) and under(defined_in, trusted):  # not, say, `from os import system` in it
        return None
    return f"{name} there is not a {'kind of object allowed' if module in rules else 'definition of a trusted module'}"


KINDS = {"network": (network_rules, NETWORK_KINDS), "data": (data_rules, DATA_KINDS), "run": (run_rules, RUN_KINDS)}


def check_targets(
    node,
    trusted_modules: Iterable[str] = (),
    source: str = "the config",
    run_config: bool = False,
    kinds: str = "",
    unresolved: bool = False,
) -> None:
    """Raise UnsafeConfigError, in one line naming `source` and the refused entry, unless every
    `_target_` in `node` (plain dicts and lists, or a DictConfig: checked resolved) may be built.
    kinds: what may be built, "network" (a Classifier's parts, the default), "data" (a data module) or "run"
    (`run_config`: also the trainer, callbacks, loggers and profilers of a run's saved config).
    unresolved: a first look at a saved config before it is resolved: references in other values pass (they
    are resolved, and everything checked again, by mnistlab.received.run_config), never in a `_target_`."""
    make_rules, allowed = KINDS[kinds or ("run" if run_config else "network")]
    from omegaconf import DictConfig, ListConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(node, (DictConfig, ListConfig)):
        try:  # what instantiate will see; resolvers return data, the targets in it are checked below
            node = OmegaConf.to_container(node, resolve=True)
        except OmegaConfBaseException as err:
            raise ConfigError(f"{source}: {str(err).splitlines()[0]}") from None
    trusted = tuple(str(module) for module in trusted_modules or ())
    for module in trusted:
        if not module or not is_dotted_name(module):
            raise ConfigError(f"trusted_modules: {module!r} is not a module name such as mypkg.nets")
    rules = None
    for where, value, is_target in entries(node):
        if isinstance(value, str) and "${" in value and (is_target or not unresolved):
            raise UnsafeConfigError(
                f"{source}: refused {where}={shown(value)}: an interpolation is resolved "
                f"when the config is built and could build anything; nothing was run"
            )
        if not is_target:
            continue
        rules = rules if rules is not None else make_rules()
        why = refusal(value, rules, trusted)
        if why is not None:
            raise UnsafeConfigError(
                f"{source}: refused to build {where}={shown(value)} ({why}); nothing was run. Only "
                f"{allowed} are built here, and classes of modules trusted on "
                f"the command line (trusted_modules=[<module>])"
            )


def shown(value) -> str:
    """A value for a one-line message: quoted, newlines escaped, not too long."""
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
