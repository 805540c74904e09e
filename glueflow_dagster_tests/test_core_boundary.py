"""The functional core imports no Dagster: it is plain Python and polars, usable and testable alone."""

from __future__ import annotations

import subprocess
import sys

CORE_MODULES = (
    "bookmarks",
    "checks",
    "commits",
    "config",
    "flow_accounting",
    "flow_ratio",
    "glue_import",
    "json_reader",
    "lineage",
    "manifests",
    "mapping",
    "quarantine",
    "sample_data",
    "stage",
    "storage",
)


def test_the_core_imports_no_dagster() -> None:
    # One fresh interpreter imports the core module by module and names the first one that pulls Dagster in.
    probe = (
        "import importlib, sys\n"
        f"for module in {CORE_MODULES!r}:\n"
        "    importlib.import_module('glueflow_dagster.' + module)\n"
        "    if 'dagster' in sys.modules:\n"
        "        print(module)\n"
        "        break\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"glueflow_dagster.{result.stdout.strip()} imports dagster"
