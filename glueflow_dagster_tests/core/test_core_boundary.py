"""The layers hold: the core imports no Dagster, nothing imports upwards, and no modules import each other.

The package has three layers, and the file list shows them: `glueflow_dagster/core/` (plain Python and
polars), `glueflow_dagster/components/` with `definitions.py` and `defs/` (the Dagster shell), and
`glueflow_dagster/cli/` on top. `spark/` is the script that runs inside Spark: it stands on the core.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import glueflow_dagster

PACKAGE = Path(glueflow_dagster.__file__).resolve().parent
# The layer of each part of the package; a module may import its own layer and the ones below it.
LAYERS = {"core": 0, "spark": 1, "components": 1, "defs": 1, "definitions": 1, "__init__": 1, "cli": 2}
LAYERS["glue_import"] = 1  # the Glue importer stands on the core; only the CLI uses it


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int:
    return LAYERS[module.split(".")[1] if "." in module else "__init__"]


def imported_modules(module: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that `module` imports anywhere (lazy imports inside functions included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        found |= {name for name in names if name in known and name != module}
    return found


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    return {module: imported_modules(module, path, set(modules)) for module, path in modules.items()}


def core_modules() -> list[str]:
    return [module for module in package_modules() if module.startswith("glueflow_dagster.core.")]


def test_the_core_imports_no_dagster() -> None:
    # One fresh interpreter imports the core module by module and names the first one that pulls Dagster in.
    modules = core_modules()
    assert len(modules) >= 15, modules  # the discovery found the core
    probe = (
        "import importlib, sys\n"
        f"for module in {modules!r}:\n"
        "    importlib.import_module(module)\n"
        "    if 'dagster' in sys.modules:\n"
        "        print(module)\n"
        "        break\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"{result.stdout.strip()} imports dagster"


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = [
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        for target in targets
        if layer(target) > layer(module)
    ]
    assert upward == []


def test_the_core_does_not_import_the_shell_even_lazily() -> None:
    graph = import_graph()
    shell = [f"{m} -> {t}" for m in core_modules() for t in graph[m] if not t.startswith("glueflow_dagster.core.")]
    assert shell == []


def test_no_import_cycles() -> None:
    graph = import_graph()
    # Packages import their own modules (re-exports); a cycle through a package's __init__ is not a cycle
    # between concepts, so edges into package inits are left out.
    packages = {m for m, p in package_modules().items() if p.name == "__init__.py"}
    edges = {m: {t for t in ts if t not in packages} for m, ts in graph.items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(module: str, stack: list[str]) -> None:
        state[module] = 1
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                cycles.append([*stack[stack.index(target) :], target])
            elif target not in state:
                visit(target, [*stack, target])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert cycles == []
