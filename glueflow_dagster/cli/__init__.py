"""The `glueflow` command line, on top of the core and the Dagster shell."""

from glueflow_dagster.cli.main import main

__all__ = ["main"]
