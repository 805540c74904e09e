"""The Glue job scripts the importer's tests convert, and helpers to run the real command.

The guide's two scripts (`../shared/seed/`, "Monitoring the progress of multiple jobs") are written
out as full Glue scripts with a realistic `map_spec` (the fields of the sample events); the variations
start from `SCRIPT_START` and end with `SINK`.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from glueflow_dagster.cli import main
from glueflow_dagster.glue_import import ImportReport, convert_scripts

# --- the guide's scripts, as full Glue job scripts -------------------------------------------------

GLUE_HEADER = """\
import sys
from awsglue.transforms import *
from awsglue.utils import getResolvedOptions
from pyspark.context import SparkContext
from awsglue.context import GlueContext
from awsglue.job import Job
"""

# The Input job: raw click-stream events -> staging. The three statements at the end are the guide's, verbatim
# except that `s3://input_path` and `staging_path` are job arguments instead of placeholders.
GUIDE_INPUT = (
    GLUE_HEADER
    + """
args = getResolvedOptions(sys.argv, ["JOB_NAME", "input_path", "staging_path"])
sc = SparkContext()
glueContext = GlueContext(sc)
spark = glueContext.spark_session
job = Job(glueContext)
job.init(args["JOB_NAME"], args)
input_path = args["input_path"]
staging_path = args["staging_path"]

map_spec = [
    ("id", "long", "event_id", "long"),
    ("type", "string", "event_type", "string"),
    ("ts", "string", "event_time", "timestamp"),
    ("user.id", "int", "user_id", "long"),
    ("user.country", "string", "user.country", "string"),
    ("user.premium", "boolean", "user.premium", "boolean"),
    ("amount", "string", "amount", "double"),
    ("device.os", "string", "device_os", "string"),
]

datasource0 = glueContext.create_dynamic_frame.from_options(connection_type="s3", connection_options = {"paths": [input_path], "useS3ListImplementation":True,"recurse":True}, format="json")
applymapping1 = ApplyMapping.apply(frame = datasource0, mappings = map_spec)
datasink2 = glueContext.write_dynamic_frame.from_options(frame = applymapping1, connection_type = "s3", connection_options = {"path": staging_path, "compression": "gzip"}, format = "json")
job.commit()
"""  # noqa: E501 - the guide's lines, as published
)

GUIDE_OUTPUT_SOURCE = (
    'datasource0 = glueContext.create_dynamic_frame.from_options(connection_type="s3", connection_options = '
    '{"paths": [staging_path], "useS3ListImplementation":True,"recurse":True}, format="json")'
)
# The guide's fix: the same source with a transformation_ctx (job bookmarks enabled).
GUIDE_OUTPUT_SOURCE_FIXED = GUIDE_OUTPUT_SOURCE[:-1] + ', transformation_ctx = "bookmark_ctx")'

GUIDE_OUTPUT = (
    GLUE_HEADER
    + """
args = getResolvedOptions(sys.argv, ["JOB_NAME", "staging_path", "output_path"])
sc = SparkContext()
glueContext = GlueContext(sc)
job = Job(glueContext)
job.init(args["JOB_NAME"], args)
staging_path = args["staging_path"]
output_path = args["output_path"]

map_spec = [
    ("event_id", "long", "event_id", "long"),
    ("event_type", "string", "event_type", "string"),
    ("event_time", "timestamp", "event_time", "timestamp"),
    ("user_id", "long", "user_id", "long"),
    ("user.country", "string", "country", "string"),
    ("amount", "double", "amount", "double"),
]

SOURCE
applymapping1 = ApplyMapping.apply(frame = datasource0, mappings = map_spec)
datasink2 = glueContext.write_dynamic_frame.from_options(frame = applymapping1, connection_type = "s3", connection_options = {"path": output_path}, format = "json")
job.commit()
"""  # noqa: E501
)

INPUT_MAPPINGS = [
    ["id", "long", "event_id", "long"],
    ["type", "string", "event_type", "string"],
    ["ts", "string", "event_time", "timestamp"],
    ["user.id", "int", "user_id", "long"],
    ["user.country", "string", "user.country", "string"],
    ["user.premium", "boolean", "user.premium", "boolean"],
    ["amount", "string", "amount", "double"],
    ["device.os", "string", "device_os", "string"],
]
OUTPUT_MAPPINGS = [
    ["event_id", "long", "event_id", "long"],
    ["event_type", "string", "event_type", "string"],
    ["event_time", "timestamp", "event_time", "timestamp"],
    ["user_id", "long", "user_id", "long"],
    ["user.country", "string", "country", "string"],
    ["amount", "double", "amount", "double"],
]


def guide_output(fixed: bool) -> str:
    return GUIDE_OUTPUT.replace("SOURCE", GUIDE_OUTPUT_SOURCE_FIXED if fixed else GUIDE_OUTPUT_SOURCE)


def line_of(script: str, text: str) -> int:
    """1-based line of the first line containing `text` (so tests never hard-code line numbers)."""
    return next(n for n, line in enumerate(script.splitlines(), start=1) if text in line)


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def import_glue(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the real `glueflow import-glue` command in-process; returns (exit code, stdout, stderr)."""
    code = main(["import-glue", *args])
    out, err = capsys.readouterr()
    return code, out, err


def items(report: ImportReport, status: str, field: str | None = None) -> list[Any]:
    return [i for i in report.of(status) if field is None or i.field == field]


# --- realistic variations ----------------------------------------------------------------------------

SCRIPT_START = GLUE_HEADER + textwrap.dedent(
    """
    args = getResolvedOptions(sys.argv, ["JOB_NAME", "bucket", "env"])
    glueContext = GlueContext(SparkContext.getOrCreate())
    job = Job(glueContext)
    job.init(args["JOB_NAME"], args)
    """
)
PLAIN_OUTPUT = SCRIPT_START + textwrap.dedent(
    """
    src = glueContext.create_dynamic_frame.from_options(
        connection_type="s3",
        connection_options={"paths": [f"s3://{args['bucket']}/{args['env']}/staging/"], "recurse": True},
        format="json",
        transformation_ctx="orders_ctx",
    )
    mapped = ApplyMapping.apply(frame=src, mappings=[("order_id", "long", "order_id", "long")])
    glueContext.write_dynamic_frame.from_options(
        frame=mapped,
        connection_type="s3",
        connection_options={"path": "s3://" + args["bucket"] + "/out"},
        format="json",
    )
    job.commit()
    """
)


def convert(input_script: str, output_script: str = PLAIN_OUTPUT, **kwargs: Any) -> ImportReport:
    return convert_scripts("orders", input_script, output_script, **kwargs)


def input_script(body: str) -> str:
    return SCRIPT_START + textwrap.dedent(body)


SINK = """
glueContext.write_dynamic_frame.from_options(
    frame=mapped,
    connection_type="s3",
    connection_options={"path": "s3://" + args["bucket"] + "/" + args["env"] + "/staging/", "compression": "gzip"},
    format="json",
)
job.commit()
"""
