"""`glueflow import-glue`: turn existing AWS Glue PySpark scripts, jobs and triggers into a glueflow flow.

Why this exists: people who already run the Glue guide's Input/Output jobs should not retype every
ApplyMapping tuple and S3 option. The scripts are read with Python's `ast` and never executed (they
import awsglue/pyspark, which are not installed here, and running someone's ETL to read its shape
would be unsafe). Only the shapes listed in docs/from-glue.md are converted; every other statement is reported
with its line, so nothing is silently dropped. The result is a flow entry in glueflow.yaml's exact
schema (validated with `config.parse_config`) plus a report of what was converted, what came from
defaults and what needs the user.

Only the CLI uses this package; the core never imports it. Plain Python (no Dagster import); boto3 is
imported only by the `--from-aws` reader.

The modules, in the order a conversion goes through them:
- `values`, `evaluate`, `script`: a script's syntax tree, its expressions evaluated statically, its
  steps, and the one job (source -> ApplyMapping -> sink) they make.
- `draft`: the flow entry being built and its report items.
- `locations`, `formats` (CSV, Parquet, partitionKeys, staging read as written), `catalog` (from_catalog
  tables), `getsink` (Glue Studio's sink), `sparkwrites` + `iceberg` (Spark settings, toDF, the Output
  job's writeTo/write_data_frame to an Iceberg table), `transforms`, `mappings`, `bookmarks`, `arguments`: each part
  of the two jobs as flow keys.
- `triggers` (Glue cron and triggers), `aws` (`--from-aws`: jobs, scripts, triggers via boto3).
- `builder`: the whole conversion (`convert_scripts`, `convert_files`, `convert_aws`).
- `report`: the migration report; `writer`: the flow file or component written.
"""

from glueflow_dagster.glue_import.arguments import validate_entry, with_defaults
from glueflow_dagster.glue_import.aws import AwsFacts, AwsJob, read_aws
from glueflow_dagster.glue_import.builder import convert_aws, convert_files, convert_scripts
from glueflow_dagster.glue_import.report import (
    CONVERTED,
    DEFAULT,
    NEEDS_USER,
    STATUSES,
    UNSUPPORTED,
    ImportGlueError,
    ImportReport,
    ReportItem,
)
from glueflow_dagster.glue_import.triggers import DEFAULT_SCHEDULE, GlueCronError, glue_cron_to_dagster
from glueflow_dagster.glue_import.writer import (
    COMPONENT_TYPE,
    dump_yaml,
    flow_document,
    write_component,
    write_flow_file,
)

__all__ = [
    "COMPONENT_TYPE",
    "CONVERTED",
    "DEFAULT",
    "DEFAULT_SCHEDULE",
    "NEEDS_USER",
    "STATUSES",
    "UNSUPPORTED",
    "AwsFacts",
    "AwsJob",
    "GlueCronError",
    "ImportGlueError",
    "ImportReport",
    "ReportItem",
    "convert_aws",
    "convert_files",
    "convert_scripts",
    "dump_yaml",
    "flow_document",
    "glue_cron_to_dagster",
    "read_aws",
    "validate_entry",
    "with_defaults",
    "write_component",
    "write_flow_file",
]
