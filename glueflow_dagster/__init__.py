"""glueflow-dagster: chained, incremental S3 ETL jobs on Dagster, with Glue's semantics.

`GlueFlows` (the component type, `type: glueflow_dagster.GlueFlows`) is exported lazily, so that
importing the Dagster-free core (`glueflow_dagster.core.config`, `.mapping`, ...) does not import Dagster.
"""

from typing import Any

from glueflow_dagster.core.mapping import ApplyMapping

__all__ = ["ApplyMapping", "GlueFlows"]


def __getattr__(name: str) -> Any:
    if name == "GlueFlows":
        from glueflow_dagster.components.glue_flows import GlueFlows

        return GlueFlows
    raise AttributeError(f"module 'glueflow_dagster' has no attribute {name!r}")


def __dir__() -> list[str]:
    # dg's registry scan walks dir(module): list the lazy export so it finds the component type.
    return sorted({*globals(), *__all__})
