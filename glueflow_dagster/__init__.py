"""glueflow-dagster: chained, incremental S3 ETL jobs on Dagster, with Glue's semantics."""

from glueflow_dagster.mapping import ApplyMapping

__all__ = ["ApplyMapping"]
