"""The layers of the code (.importlinter, CONTRIBUTING.md): the contract holds, a wrong import breaks it, no
module imports itself back through others, and imports inside functions are the few kept for start-up time."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
# Each import kept inside a function: a module that loads Lightning, kept out of what light commands import
STARTUP_IMPORTS = {
    ("mnistlab.received.checkpoint", "mnistlab.training.classifier"),
    ("mnistlab.runs.checkpoints", "mnistlab.training.classifier"),
}


def lint_imports(src: Path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(src)}  # this copy of the code, not the installed one
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=ROOT, env=env, capture_output=True, text=True)


def test_the_layers_contract_is_kept():
    result = lint_imports(SRC)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "1 kept, 0 broken" in result.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    copy = tmp_path / "src"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    with open(copy / "mnistlab" / "data" / "idx.py", "a") as file:
        file.write("\nfrom mnistlab.runs import run_dir  # noqa: E402  (data importing the run machinery: wrong)\n")
    result = lint_imports(copy)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout and "mnistlab.data.idx -> mnistlab.runs.run_dir" in result.stdout


def test_no_module_imports_itself_back():
    graph = grimp.build_graph("mnistlab", "hydra_plugins.mnistlab_sweepers")
    cycles = [
        (module, imported)
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
        if graph.chain_exists(imported, module)
    ]
    assert cycles == []


def function_local_imports() -> set:
    found = set()
    for path in SRC.rglob("*.py"):
        module = ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.ImportFrom) and (inner.module or "").startswith("mnistlab"):
                        found.add((module, inner.module))
                    if isinstance(inner, ast.Import):
                        found.update((module, alias.name) for alias in inner.names if alias.name.startswith("mnistlab"))
    return found


def test_imports_inside_functions_are_only_those_kept_for_start_up():
    assert function_local_imports() == STARTUP_IMPORTS
