"""Private names of Lightning, Hydra and their libraries are used in src/mnistlab/compat/ only, behind public
functions (mnistlab.compat.lightning, mnistlab.compat.hydra, mnistlab.compat.fast_loop), and
compat/ was checked against the installed Lightning.

The scan reads every .py under src/ except src/mnistlab/compat/ with `ast` (comments and docstrings do not
count) and reports, as file:line,
  (a) imports from lightning, lightning_fabric, pytorch_lightning, hydra, omegaconf or torchmetrics of a
      private module (a `_` segment: hydra._internal) or of a private name (_SubprocessScriptLauncher);
  (b) attributes `x._name` (one leading underscore, not a dunder) and methods `def _name` in a class, where
      `_name` is a name those libraries define (self._fs in a subclass counts: it is theirs); and any other
      `x._name` where x is not self or cls, unless our own code defines `_name` (and those libraries do not),
      or it is one of OTHER_LIBRARIES;
  (c) string constants naming such internals: a private name those libraries define given to getattr,
      setattr, hasattr, delattr or __setattr__, or compared with (`name == "_current_fx_name"`); or a dotted
      path into those libraries with a private segment ("hydra._internal.utils"), anywhere.
Hydra's config keys (_target_, _partial_, ...) are its documented public interface, not internals.
"""

import ast
import functools
import importlib.util
import re
import textwrap
from pathlib import Path

import lightning as L

from mnistlab.compat.lightning import CHECKED_LIGHTNING_VERSIONS, unchecked_lightning_version

ROOT = Path(__file__).resolve().parents[1]
SRC, COMPAT = ROOT / "src", ROOT / "src" / "mnistlab" / "compat"
LIBRARIES = ("lightning", "lightning_fabric", "pytorch_lightning", "hydra", "omegaconf", "torchmetrics")
HYDRA_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_", "_self_", "_name_"}
# Private names of other libraries that mnistlab uses outside compat/ (this test is about Lightning's and Hydra's).
OTHER_LIBRARIES = {
    "_exit": "os._exit (runs/ddp.py): a watching thread ends its process while the main thread waits on a dead peer",
    "_trial_id": "optuna's id of a trial (the Optuna sweeper): Trial(study, trial_id) needs it, nothing public has it",
}
PRIVATE_PATH = re.compile(rf"\b(?:{'|'.join(LIBRARIES)})(?:\.\w+)+")


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__") and name != "_" and name not in HYDRA_KEYS


def defined_names(tree: ast.AST) -> set:
    """The names a module defines: functions, classes, assigned names and attributes, class-level fields."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
    return {name for name in names if is_private(name)}


def parse(path: Path) -> ast.AST:
    return ast.parse(path.read_text(encoding="utf-8", errors="replace"), str(path))


@functools.lru_cache(maxsize=1)
def library_names() -> frozenset:
    """Every private name the installed LIBRARIES define."""
    names = set()
    for library in LIBRARIES:
        spec = importlib.util.find_spec(library)
        for folder in (spec.submodule_search_locations or []) if spec else []:
            for path in Path(folder).rglob("*.py"):
                names |= defined_names(parse(path))
    return frozenset(names)


@functools.lru_cache(maxsize=1)
def own_names() -> frozenset:
    """The private names our own code defines, less the libraries' (ours only when not also theirs)."""
    names = set()
    for path in SRC.rglob("*.py"):
        names |= defined_names(parse(path))
    return frozenset(names - library_names())


def attribute_name_strings(tree: ast.AST) -> set:
    """The string constants that name an attribute: given to getattr and kin, or compared with."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            called = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            if called in ("getattr", "setattr", "hasattr", "delattr", "__setattr__", "__getattribute__"):
                found += node.args
        elif isinstance(node, ast.Compare):
            found += [node.left, *node.comparators]
    return {id(node) for node in found if isinstance(node, ast.Constant)}


def docstrings(tree: ast.AST) -> set:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def private_uses(source: str, filename: str = "<sample>") -> list:
    """'file:line: what' for each private use of Lightning or Hydra (the rules in this module's docstring)."""
    tree = ast.parse(source, filename)
    theirs, ours, skipped, attributes = library_names(), own_names(), docstrings(tree), attribute_name_strings(tree)
    found = []

    def report(node, what):
        found.append(f"{filename}:{node.lineno}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            parts = node.module.split(".")
            names = [alias.name for alias in node.names]
            if parts[0] in LIBRARIES and (any(map(is_private, parts)) or any(map(is_private, names))):
                report(node, f"from {node.module} import {', '.join(names)}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] in LIBRARIES and any(map(is_private, parts)):
                    report(node, f"import {alias.name}")
        elif isinstance(node, ast.Attribute) and is_private(node.attr):
            on_self = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
            if node.attr in theirs:
                report(node, f"{ast.unparse(node)} (a private name of lightning, hydra, omegaconf or torchmetrics)")
            elif not on_self and node.attr not in ours and node.attr not in OTHER_LIBRARIES:
                report(node, f"{ast.unparse(node)} (private, and not defined by our code)")
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name in theirs:
                    report(item, f"def {item.name} in class {node.name} (overrides a private method of theirs)")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skipped:
            text = node.value
            paths = [p for p in PRIVATE_PATH.findall(text) if any(map(is_private, p.split(".")))]
            named = text in theirs and id(node) in attributes
            if named or paths:
                report(node, f"the string {text if named else paths[0]!r}")
    return sorted(found, key=lambda line: (line.split(":")[0], int(line.split(":")[1])))


def test_no_module_outside_compat_names_a_private_lightning_or_hydra_name():
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if COMPAT not in path.parents:
            found += private_uses(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert not found, (
        "Lightning's and Hydra's private names belong in src/mnistlab/compat/ (lightning.py, hydra.py, "
        "fast_loop.py, hydra_help.py), behind a public function, with the reason in one line:\n" + "\n".join(found)
    )


SAMPLE = textwrap.dedent(
    '''
    """A docstring may name hydra._internal and _current_fx_name."""
    from hydra._internal.utils import _locate
    import hydra._internal.core_plugins.basic_sweeper
    from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher
    from lightning.pytorch.callbacks import TQDMProgressBar
    from ._failures import FailureCap


    def f(trainer, job, metric, cfg, torch):
        trainer._logger_connector.should_update_logs
        job._return_value
        metric._update_count
        getattr(trainer.lightning_module, "_current_fx_name")
        where = "see hydra._internal.utils._locate", name == "_current_fx_name", "_step" + name.endswith("_step")
        cfg._target_, cfg.hydra.sweeper.sampler._target_, "_self_", "hydra.sweeper._target_"  # public
        torch._foreach_lerp_, os._exit  # torch's private name belongs in compat/; os._exit is in OTHER_LIBRARIES
        trainer._not_a_name_anyone_defines
        # trainer._logger_connector in a comment is fine


    class Bar(TQDMProgressBar):
        def _should_update(self, current, total):
            return self._fs is None and self.own
    '''
)


def test_the_scan_finds_each_kind_of_private_use():
    found = [line.split(": ", 1) for line in private_uses(SAMPLE)]
    assert [(int(place.split(":")[1]), what.split(" (")[0]) for place, what in found] == [
        (3, "from hydra._internal.utils import _locate"),
        (4, "import hydra._internal.core_plugins.basic_sweeper"),
        (5, "from lightning.pytorch.strategies.launchers import _SubprocessScriptLauncher"),
        (11, "trainer._logger_connector"),
        (12, "job._return_value"),
        (13, "metric._update_count"),
        (14, "the string '_current_fx_name'"),
        (15, "the string 'hydra._internal.utils._locate'"),
        (15, "the string '_current_fx_name'"),
        (17, "torch._foreach_lerp_"),
        (18, "trainer._not_a_name_anyone_defines"),
        (23, "def _should_update in class Bar"),
        (24, "self._fs"),
    ]


def test_compat_was_checked_against_the_installed_lightning():
    assert unchecked_lightning_version() is None, (
        f"src/mnistlab/compat/ was checked against Lightning {', '.join(CHECKED_LIGHTNING_VERSIONS)}; run "
        f"tests/test_fast_loop.py and tests/test_internals.py on version {L.__version__} and add it to "
        "CHECKED_LIGHTNING_VERSIONS in src/mnistlab/compat/lightning.py (and to pyproject.toml's range)"
    )
