"""The layers hold: the core imports no Dagster, nothing imports upwards, and no modules import each other.

The package's layers, bottom to top, and the file list shows them:

- `core/`: plain Python and polars, no Dagster; it imports nothing else of the package;
- `spark/`: the script that runs inside Spark; it stands on the core;
- `components/`: the Dagster shell (the component type and what it builds per flow);
- `defs/`, `definitions.py` and the package root `__init__.py` (what `dg` loads): they load the shell;
- `glue_import/`: the Glue importer, used by the CLI only;
- `cli/`: on top of everything.

A module may import its own layer and the layers below it, lazily (inside a function) or not. `benchmarks/` is
not part of the package: it is not installed, and no test imports it (shared drivers live in
`glueflow_dagster_tests/support/`).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import glueflow_dagster

PACKAGE = Path(glueflow_dagster.__file__).resolve().parent
TESTS = Path(__file__).resolve().parents[1]
BENCHMARKS = TESTS.parent / "benchmarks"
# The layer of each part of the package (its top-level subpackage or module); bottom to top.
LAYERS = {
    "core": 0,
    "spark": 1,
    "components": 2,
    "defs": 3,
    "definitions": 3,
    "__init__": 3,
    "glue_import": 4,
    "cli": 5,
}
# What the core must never import, even lazily: the Dagster shell, the CLI and the importer.
ABOVE_THE_CORE = ("components", "defs", "definitions", "cli", "glue_import")

Graph = dict[str, set[str]]


def module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules(package: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(path, package): path for path in sorted(package.rglob("*.py"))}


def part(module: str) -> str:
    """The top-level part of the package a module belongs to (`__init__` for the package root)."""
    return module.split(".")[1] if "." in module else "__init__"


def layer(module: str) -> int:
    return LAYERS[part(module)]


def reexports(modules: dict[str, Path]) -> dict[str, dict[str, str]]:
    """For each package (`__init__.py`): the names it imports from the package's modules, and from where."""
    found: dict[str, dict[str, str]] = {}
    for module, path in modules.items():
        if path.name != "__init__.py":
            continue
        names: dict[str, str] = {}
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.module in modules:
                names.update({alias.asname or alias.name: node.module for alias in node.names})
        found[module] = names
    return found


def imported_modules(module: str, path: Path, modules: dict[str, Path], *, resolve: bool) -> set[str]:
    """The package's modules that `module` imports anywhere (lazy imports inside functions included).

    `from package import name` is an edge to the package; with ``resolve``, to the module that defines
    ``name`` when the package re-exports it, or to the submodule ``package.name`` (how a split module's
    package still answers for its old names, without hiding which module is really used).
    """
    exported = reexports(modules) if resolve else {}
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module in modules:
            for alias in node.names:
                target = node.module
                if resolve:
                    while alias.name in exported.get(target, {}):
                        target = exported[target][alias.name]
                    if f"{target}.{alias.name}" in modules:
                        target = f"{target}.{alias.name}"
                found.add(target)
    found.discard(module)
    return found


def import_graph(package: Path = PACKAGE, *, resolve: bool = False) -> Graph:
    modules = package_modules(package)
    return {module: imported_modules(module, path, modules, resolve=resolve) for module, path in modules.items()}


def upward_imports(graph: Graph) -> list[str]:
    return sorted(f"{m} -> {t}" for m, targets in graph.items() for t in targets if layer(t) > layer(m))


def core_imports_above(graph: Graph) -> list[str]:
    return sorted(f"{m} -> {t}" for m, ts in graph.items() if part(m) == "core" for t in ts if part(t) != "core")


def import_cycles(graph: Graph) -> list[list[str]]:
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(module: str, stack: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append([*stack[stack.index(target) :], target])
            elif target not in state:
                visit(target, [*stack, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return cycles


def core_modules() -> list[str]:
    return [module for module in package_modules() if part(module) == "core" and module != "glueflow_dagster.core"]


def test_every_part_of_the_package_has_a_layer() -> None:
    parts = {part(module) for module in package_modules()}
    assert parts - set(LAYERS) == set(), "give each new part of the package its layer in LAYERS"
    assert {"core", "spark", "components", "defs", "definitions", "__init__", "cli"} <= parts  # discovery works


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
    assert upward_imports(import_graph()) == []


def test_the_core_imports_nothing_from_the_shell_the_cli_or_the_importer_even_lazily() -> None:
    graph = import_graph()
    assert core_imports_above(graph) == []
    assert all(part(t) not in ABOVE_THE_CORE for m in core_modules() for t in graph[m])


def test_no_import_cycles() -> None:
    # Resolved through the packages' re-exports: a cycle through a package's `__init__` is a cycle
    # between the modules that define the names.
    assert import_cycles(import_graph(resolve=True)) == []


def test_no_test_imports_a_benchmark_module() -> None:
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.relative_to(TESTS)}: {n}" for n in names if n.split(".")[0] == "benchmarks"]
    assert offenders == []


def test_benchmarks_and_tests_are_not_installed_with_the_package() -> None:
    setup_py = PACKAGE.parent / "setup.py"
    if not setup_py.is_file():
        pytest.skip("the package runs without its source tree (no setup.py)")
    from setuptools import find_packages

    calls = [
        node
        for node in ast.walk(ast.parse(setup_py.read_text()))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "find_packages"
    ]
    assert len(calls) == 1, "setup.py lists its packages with one find_packages call"
    options = {keyword.arg: ast.literal_eval(keyword.value) for keyword in calls[0].keywords}
    installed = find_packages(where=str(PACKAGE.parent), **options)
    assert "glueflow_dagster" in installed
    assert [p for p in installed if p.split(".")[0] in ("benchmarks", "glueflow_dagster_tests")] == []


# The checks themselves, on a small package built here: each finds what it is for.


def _write_package(root: Path, files: dict[str, str]) -> Path:
    package = root / "glueflow_dagster"
    for name, text in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return package


def test_the_checks_find_upward_imports_cycles_and_a_core_reaching_up(tmp_path: Path) -> None:
    package = _write_package(
        tmp_path,
        {
            "__init__.py": "def __getattr__(name):\n    from glueflow_dagster.components.flows import Flows\n",
            "core/__init__.py": "",
            "core/store/__init__.py": "from glueflow_dagster.core.store.keys import check\n",
            "core/store/keys.py": "def check():\n    from glueflow_dagster.cli.main import main\n",
            "core/plain.py": "from glueflow_dagster.core.store import check\n",
            "components/__init__.py": "",
            "components/flows.py": "from glueflow_dagster.definitions import build\n",
            "components/stage.py": "import glueflow_dagster\n",
            "definitions.py": "from glueflow_dagster.components import stage\n",
            "cli/__init__.py": "",
            "cli/main.py": "from glueflow_dagster.core.plain import check\n",
        },
    )
    graph = import_graph(package)
    assert upward_imports(graph) == [
        "glueflow_dagster.components.flows -> glueflow_dagster.definitions",
        "glueflow_dagster.components.stage -> glueflow_dagster",
        "glueflow_dagster.core.store.keys -> glueflow_dagster.cli.main",
    ]
    assert core_imports_above(graph) == ["glueflow_dagster.core.store.keys -> glueflow_dagster.cli.main"]
    resolved = import_graph(package, resolve=True)
    assert "glueflow_dagster.core.store.keys" in resolved["glueflow_dagster.core.plain"]  # through the re-export
    cycles = import_cycles(resolved)
    assert [
        "glueflow_dagster.cli.main",
        "glueflow_dagster.core.plain",
        "glueflow_dagster.core.store.keys",
        "glueflow_dagster.cli.main",
    ] in cycles
    assert any("glueflow_dagster.components.stage" in cycle and "glueflow_dagster" in cycle for cycle in cycles)


def test_the_checks_pass_a_package_that_keeps_its_layers(tmp_path: Path) -> None:
    package = _write_package(
        tmp_path,
        {
            "__init__.py": "from glueflow_dagster.core.store import check\n",
            "core/__init__.py": "",
            "core/store/__init__.py": "from glueflow_dagster.core.store.keys import check\n",
            "core/store/keys.py": "import os\n",
            "components/__init__.py": "",
            "components/flows.py": "from glueflow_dagster.core.store import check\n",
            "cli/__init__.py": "",
            "cli/main.py": "def main():\n    from glueflow_dagster.components.flows import check\n",
        },
    )
    graph = import_graph(package)
    assert upward_imports(graph) == []
    assert core_imports_above(graph) == []
    assert import_cycles(import_graph(package, resolve=True)) == []


# The size limits the package, its tests and its benchmarks keep (split along concepts before a module or a
# function reaches them).
MAX_MODULE_LINES = 800
MAX_FUNCTION_LINES = 100


def oversized(package: Path) -> list[str]:
    """Modules over MAX_MODULE_LINES lines and functions (methods, nested ones) over MAX_FUNCTION_LINES."""
    found = []
    for path in sorted(package.rglob("*.py")):
        text = path.read_text()
        name = path.relative_to(package.parent).as_posix()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            found.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text, filename=str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno is not None:
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(f"{name}: {node.name} {length} lines")
    return found


@pytest.mark.parametrize("tree", ["package", "tests", "benchmarks"])
def test_no_module_over_800_lines_and_no_function_over_100(tree: str) -> None:
    folder = {"package": PACKAGE, "tests": TESTS, "benchmarks": BENCHMARKS}[tree]
    if not folder.is_dir():
        pytest.skip(f"the {tree} are not beside the installed package")
    assert oversized(folder) == []


def test_the_size_check_finds_a_long_module_and_a_long_function(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "long_function.py").write_text("def f() -> None:\n" + "    x = 1\n" * MAX_FUNCTION_LINES)
    (package / "long_module.py").write_text("x = 1\n" * (MAX_MODULE_LINES + 1))
    (package / "fine.py").write_text("def g() -> None:\n" + "    x = 1\n" * (MAX_FUNCTION_LINES - 1))
    assert oversized(package) == ["pkg/long_function.py: f 101 lines", "pkg/long_module.py: 801 lines"]
