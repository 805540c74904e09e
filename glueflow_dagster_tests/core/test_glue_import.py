"""`glueflow import-glue`: Glue scripts, jobs and triggers in, a flow that runs end to end out.

The guide's two scripts (`../shared/seed/`, "Monitoring the progress of multiple jobs") are written
out as full Glue scripts with a realistic `map_spec` (the fields of the sample events), converted
through the real command, loaded through the real definitions and run for an Input -> sensor ->
Output cycle. The `--from-aws` path reads jobs, scripts and triggers from the moto server.
"""

from __future__ import annotations

import json
import textwrap
import uuid
from pathlib import Path
from typing import Any

import boto3
import polars as pl
import pytest
import yaml
from dagster._utils.schedules import is_valid_cron_string
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glueflow_dagster.cli import main
from glueflow_dagster.cli.demo import run_cycle
from glueflow_dagster.core.config import load_config
from glueflow_dagster.core.glue_import import (
    CONVERTED,
    DEFAULT,
    NEEDS_USER,
    UNSUPPORTED,
    GlueCronError,
    ImportGlueError,
    ImportReport,
    convert_scripts,
    glue_cron_to_dagster,
)

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


# --- the guide, converted and run ------------------------------------------------------------------


def test_guide_scripts_convert_to_the_flow_schema_with_a_report(tmp_path: Path, capsys) -> None:
    inp = write(tmp_path, "input.py", GUIDE_INPUT)
    out = write(tmp_path, "output.py", guide_output(fixed=False))
    flow_file = tmp_path / "glueflow.yaml"
    code, stdout, stderr = import_glue(
        capsys, "--input-script", str(inp), "--output-script", str(out), "--flow", "events", "--out", str(flow_file)
    )
    assert code == 0, stdout + stderr
    entry = yaml.safe_load(flow_file.read_text())["flows"]["events"]
    assert entry == {
        "input": {"uri": "${input_path}", "recurse": True},
        "staging": {"uri": "${staging_path}", "recurse": True, "compression": "gzip"},
        "output": {"uri": "${output_path}", "compression": "none"},
        "input_job": {"schedule": "*/30 * * * *", "mappings": INPUT_MAPPINGS},
        # The guide before its fix: no transformation_ctx, so every Output run rereads staging.
        "output_job": {"bookmark": "disable", "mappings": OUTPUT_MAPPINGS},
    }
    # The report: the converted pieces with their lines, the defaults, and what the user must set.
    source_line = line_of(GUIDE_INPUT, "create_dynamic_frame.from_options")
    assert f"/{inp.name}:{source_line}" in stdout and "input.uri" in stdout
    for heading in ("Converted (", "Set from defaults (", "Needs the user ("):
        assert heading in stdout
    assert "Not converted" not in stdout and "complete: every step" in stdout
    for variable in ("input_path", "staging_path", "output_path"):
        assert f"argument {variable}" in stdout
    assert "s3:PutObject" in stdout  # IAM is named as the user's job
    assert f"flow 'events' written to {flow_file}" in stdout


def test_guide_fix_enables_the_bookmark_and_the_flow_runs_end_to_end(
    tmp_path: Path, capsys, instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripts = tmp_path / ("a-folder-name-long-enough-that-the-report-must-cut-the-path" * 2) / "glue"
    inp = write(scripts, "input.py", GUIDE_INPUT)
    out = write(scripts, "output.py", guide_output(fixed=True))
    flow_file = tmp_path / "project" / "glueflow.yaml"
    code, stdout, _ = import_glue(
        capsys, "--input-script", str(inp), "--output-script", str(out), "--flow", "events", "--out", str(flow_file)
    )
    assert code == 0, stdout
    entry = yaml.safe_load(flow_file.read_text())["flows"]["events"]
    assert entry["output_job"] == {
        "bookmark": "enable",
        "transformation_ctx": "bookmark_ctx",
        "mappings": OUTPUT_MAPPINGS,
    }
    fixed_line = line_of(guide_output(fixed=True), "transformation_ctx")
    # A long path is cut at its start: the row still names the script and the line.
    [row] = [line for line in stdout.splitlines() if "transformation_ctx + job.init/job.commit" in line]
    assert row.split()[0] == "..." + f"{out}:{fixed_line}"[-77:]

    # The job arguments become environment variables: point them at local folders and run a cycle.
    data = tmp_path / "data"
    for name in ("input", "staging", "output"):
        monkeypatch.setenv(f"{name}_path", str(data / name))
    from glueflow_dagster.definitions import build_definitions

    config = load_config(flow_file)
    flow = config.flows["events"]
    assert flow.input.uri == str(data / "input") and flow.output_job.bookmark == "enable"
    defs = build_definitions(config)
    figures, cursor = run_cycle(defs, instance, flow, 0, None, files=2, events_per_file=300)
    assert len(figures.output_run_ids) == 1 and figures.ratio == pytest.approx(1.0)
    rows = pl.read_ndjson(sorted((data / "output").glob("run-*.json")))
    assert rows.height == 600
    assert rows.columns == ["event_id", "event_type", "event_time", "user_id", "country", "amount"]
    assert sorted(rows["event_id"].to_list()) == list(range(600))
    # A second cycle reads only the new staging object: the bookmark the script's transformation_ctx asked for.
    again, _ = run_cycle(defs, instance, flow, 1, cursor, files=2, events_per_file=300)
    assert again.ratio == pytest.approx(1.0)


def test_component_output_holds_the_flow_under_attributes(tmp_path: Path, capsys) -> None:
    inp = write(tmp_path, "input.py", GUIDE_INPUT)
    out = write(tmp_path, "output.py", guide_output(fixed=True))
    component = tmp_path / "defs" / "events_flow"
    code, stdout, _ = import_glue(
        capsys,
        "--input-script",
        str(inp),
        "--output-script",
        str(out),
        "--flow",
        "events",
        "--component",
        str(component),
    )
    assert code == 0, stdout
    document = yaml.safe_load((component / "defs.yaml").read_text())
    assert document["type"] == "glueflow_dagster.GlueFlows"
    assert list(document["attributes"]["flows"]) == ["events"]
    assert document["attributes"]["flows"]["events"]["input_job"]["mappings"] == INPUT_MAPPINGS
    # The same entry is a valid flow-file entry.
    flow_file = write(tmp_path, "flows.yaml", yaml.safe_dump({"flows": document["attributes"]["flows"]}))
    with pytest.MonkeyPatch.context() as patch:
        for name in ("input", "staging", "output"):
            patch.setenv(f"{name}_path", f"s3://bucket/{name}")
        assert load_config(flow_file).flows["events"].staging.uri == "s3://bucket/staging"
        # And the component instance itself loads through the GlueFlows door (the one parser of both).
        from glueflow_dagster.components.flow_source import load_flows  # the defs.yaml format is the shell's

        assert load_flows(component / "defs.yaml").flows["events"].output.uri == "s3://bucket/output"


def test_out_merges_into_an_existing_flow_file_and_refuses_to_overwrite(tmp_path: Path, capsys) -> None:
    flow_file = write(
        tmp_path,
        "glueflow.yaml",
        yaml.safe_dump(
            {
                "flows": {
                    "clicks": {
                        "input": {"uri": "in"},
                        "staging": {"uri": "st"},
                        "output": {"uri": "out"},
                        "input_job": {"mappings": [["a", "long", "a", "long"]]},
                        "output_job": {"mappings": [["a", "long", "a", "long"]]},
                    }
                }
            }
        ),
    )
    inp = write(tmp_path, "input.py", GUIDE_INPUT)
    out = write(tmp_path, "output.py", guide_output(fixed=True))
    args = ("--input-script", str(inp), "--output-script", str(out), "--flow", "events", "--out", str(flow_file))
    assert import_glue(capsys, *args)[0] == 0
    assert list(yaml.safe_load(flow_file.read_text())["flows"]) == ["clicks", "events"]
    code, _, stderr = import_glue(capsys, *args)
    assert (
        code == 2
        and stderr.strip() == f"glueflow: {flow_file}: flow 'events' already exists; remove it or choose another --flow"
    )


def test_without_a_destination_the_flow_file_goes_to_stdout_and_the_report_to_stderr(tmp_path: Path, capsys) -> None:
    inp = write(tmp_path, "input.py", GUIDE_INPUT)
    out = write(tmp_path, "output.py", guide_output(fixed=True))
    code, stdout, stderr = import_glue(capsys, "--input-script", str(inp), "--output-script", str(out), "--flow", "ev")
    assert code == 0
    assert yaml.safe_load(stdout)["flows"]["ev"]["output_job"]["bookmark"] == "enable"
    assert "Converted (" in stderr


def test_json_report_fields(tmp_path: Path, capsys) -> None:
    inp = write(tmp_path, "input.py", GUIDE_INPUT)
    out = write(tmp_path, "output.py", guide_output(fixed=True))
    code, stdout, _ = import_glue(
        capsys, "--input-script", str(inp), "--output-script", str(out), "--flow", "events", "--json"
    )
    assert code == 0
    report = json.loads(stdout)
    assert set(report) == {
        "flow",
        "complete",
        "sources",
        "converted",
        "defaults",
        "needs_user",
        "unsupported",
        "variables",
        "flow_entry",
        "written",
    }
    assert report["complete"] is True and report["unsupported"] == [] and report["written"] is None
    assert report["variables"] == [
        {"name": "input_path", "default": None},
        {"name": "staging_path", "default": None},
        {"name": "output_path", "default": None},
    ]
    [uri] = [i for i in report["converted"] if i["field"] == "input.uri"]
    assert uri == {
        "status": "converted",
        "field": "input.uri",
        "value": "${input_path}",
        "source": str(inp),
        "line": line_of(GUIDE_INPUT, "create_dynamic_frame"),
        "message": "connection_options paths",
    }
    assert report["flow_entry"]["output_job"]["mappings"] == OUTPUT_MAPPINGS


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


def test_variable_bound_and_concatenated_mapping_lists_and_argument_paths() -> None:
    script = (
        input_script(
            """
        keys = [("order_id", "string", "order_id", "long")]
        money = [
            ("total.amount", "string", "total", "decimal(12,2)"),
            ("total.currency", "string", "currency", "string"),
        ]
        audit = (("`meta.created`", "string", "created_at", "timestamp"),)
        all_mappings = keys + money + [("customer.id", "int", "customer_id", "long")]
        raw_path = "s3://" + args["bucket"] + "/raw/orders/"
        src = glueContext.create_dynamic_frame.from_options(
            connection_type="s3",
            connection_options={
                "paths": [raw_path],
                "exclusions": "[\\"**.tmp\\", \\"**/_SUCCESS\\"]",
                "groupFiles": "inPartition",
                "groupSize": "1048576",
            },
            format="json",
            format_options={"multiline": False},
            transformation_ctx="raw_ctx",
        )
        mapped = ApplyMapping.apply(frame=src, mappings=all_mappings + list(audit), transformation_ctx="map_ctx")
        """
        ).replace("list(audit)", "[audit[0]]")
        + SINK
    )
    report = convert(script)
    assert report.complete, report.table()
    assert report.entry["input"] == {
        "uri": "s3://${bucket}/raw/orders/",
        "recurse": False,
        "exclusions": ["**.tmp", "**/_SUCCESS"],
    }
    assert report.entry["staging"] == {"uri": "s3://${bucket}/${env}/staging/", "recurse": True, "compression": "gzip"}
    assert report.entry["output"] == {"uri": "s3://${bucket}/out", "compression": "none"}
    assert report.entry["input_job"]["mappings"] == [
        ["order_id", "string", "order_id", "long"],
        ["total.amount", "string", "total", "decimal(12,2)"],
        ["total.currency", "string", "currency", "string"],
        ["customer.id", "int", "customer_id", "long"],
        ["`meta.created`", "string", "created_at", "timestamp"],
    ]
    assert report.entry["output_job"]["transformation_ctx"] == "orders_ctx"
    assert report.variables == {"bucket": None, "env": None}
    # Glue's recurse default (false) is written explicitly, and said so.
    [recurse] = items(report, DEFAULT, "input.recurse")
    assert "Glue's default" in recurse.message
    # groupFiles/groupSize have no flow key (glueflow always groups small objects): reported as defaults,
    # never written as unknown keys.
    grouped = {i.field: i for i in items(report, DEFAULT) if "group" in i.field}
    assert set(grouped) == {"input (groupFiles)", "input (groupSize)"}
    assert not [i for i in items(report, NEEDS_USER) if "group" in i.field]
    assert all("glueflow always reads objects of up to 1 MiB as group files" in i.message for i in grouped.values())
    assert grouped["input (groupSize)"].line == line_of(script, "create_dynamic_frame")


def test_method_form_apply_mapping_and_error_threshold() -> None:
    script = (
        input_script(
            """
        src = glueContext.create_dynamic_frame_from_options("s3", {"paths": ["s3://raw-bucket/orders"]}, format="json")
        mapped = src.apply_mapping(
            [("id", "long", "order_id", "long"), ("state", "string", "status", "string")], totalThreshold=25
        )
        """
        )
        + SINK
    )
    report = convert(script)
    assert report.complete, report.table()
    assert report.entry["input_job"]["mappings"] == [
        ["id", "long", "order_id", "long"],
        ["state", "string", "status", "string"],
    ]
    assert report.entry["input_job"]["max_error_records"] == 25
    assert report.entry["input"]["uri"] == "s3://raw-bucket/orders"


def test_filter_and_join_are_reported_with_their_lines_and_fail_the_command(tmp_path: Path, capsys) -> None:
    script = (
        input_script(
            """
        orders = glueContext.create_dynamic_frame.from_options(connection_type="s3", connection_options={"paths": ["s3://raw/orders"]}, format="json")
        customers = glueContext.create_dynamic_frame.from_options(connection_type="s3", connection_options={"paths": ["s3://raw/customers"]}, format="json")
        paid = Filter.apply(frame=orders, f=lambda row: row["state"] == "PAID")
        joined = Join.apply(paid, customers, "customer_id", "id")
        resolved = ResolveChoice.apply(frame=joined, choice="cast:long")
        mapped = ApplyMapping.apply(frame=resolved, mappings=[("id", "long", "order_id", "long")])
        """  # noqa: E501
        )
        + SINK
    )
    report = convert(script)
    assert not report.complete
    unsupported = {(i.line, i.message.split(":")[0]) for i in items(report, UNSUPPORTED)}
    assert (line_of(script, "Filter.apply"), "Filter.apply") in unsupported
    assert (line_of(script, "Join.apply"), "Join.apply") in unsupported
    assert (line_of(script, "ResolveChoice.apply"), "ResolveChoice.apply") in unsupported
    assert (line_of(script, "customers = "), "create_dynamic_frame.from_options") in unsupported  # a second source

    inp = write(tmp_path, "input.py", script)
    out = write(tmp_path, "output.py", PLAIN_OUTPUT)
    flow_file = tmp_path / "glueflow.yaml"
    args = ("--input-script", str(inp), "--output-script", str(out), "--flow", "orders", "--out", str(flow_file))
    code, stdout, stderr = import_glue(capsys, *args)
    assert code == 1 and not flow_file.exists()
    assert f"/{inp.name}:{line_of(script, 'Join.apply')}" in stdout and "INCOMPLETE" in stdout
    assert stderr.strip() == "glueflow: 4 construct(s) not converted; nothing written (--allow-partial writes the rest)"
    # --allow-partial writes what converts (the first source and the mapping) and still reports the rest.
    code, stdout, _ = import_glue(capsys, *args, "--allow-partial", "--json")
    assert code == 0
    report_json = json.loads(stdout)
    assert report_json["complete"] is False and len(report_json["unsupported"]) == 4
    assert yaml.safe_load(flow_file.read_text())["flows"]["orders"]["input"]["uri"] == "s3://raw/orders"


def test_sql_and_other_statements_are_never_dropped() -> None:
    script = (
        input_script(
            """
        src = glueContext.create_dynamic_frame.from_options(connection_type="s3", connection_options={"paths": ["s3://raw/o"]}, format="json")
        src.toDF().createOrReplaceTempView("orders")
        for name in ["a", "b"]:
            print(name)
        mapped = ApplyMapping.apply(frame=src, mappings=[("id", "long", "id", "long")])
        """  # noqa: E501
        )
        + SINK
    )
    report = convert(script)
    lines = {i.line: i.message for i in items(report, UNSUPPORTED)}
    assert "createOrReplaceTempView" in lines[line_of(script, "createOrReplaceTempView")]
    assert "For statement" in lines[line_of(script, "for name")]


def test_from_catalog_needs_the_table_location() -> None:
    script = (
        input_script(
            """
        src = glueContext.create_dynamic_frame.from_catalog(database="sales", table_name="raw_orders", transformation_ctx="raw")
        mapped = ApplyMapping.apply(frame=src, mappings=[("id", "long", "order_id", "long")])
        """  # noqa: E501
        )
        + SINK
    )
    report = convert(script)
    [refused] = items(report, UNSUPPORTED, "input.uri")
    assert refused.line == line_of(script, "from_catalog")
    assert "not the Data Catalog" in refused.message and "--catalog-location sales.raw_orders=" in refused.message
    given = convert(script, catalog_locations={"sales.raw_orders": "s3://lake/raw/orders/"})
    assert given.complete, given.table()
    assert given.entry["input"]["uri"] == "s3://lake/raw/orders/"
    assert any("is JSON" in i.message for i in items(given, NEEDS_USER))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('connection_type="s3", connection_options={"paths": ["s3://raw/o"]}, format="parquet"', "format 'parquet'"),
        ('connection_type="s3", connection_options={"paths": ["s3://raw/o"]}, format="csv"', "format 'csv'"),
        (
            'connection_type="dynamodb", connection_options={"dynamodb.input.tableName": "t"}',
            "connection_type 'dynamodb'",
        ),
        (
            'connection_type="s3", connection_options={"paths": ["s3://raw/o"]}, format="json", '
            'format_options={"jsonPath": "$..records"}',
            "cannot read this jsonPath",
        ),
        ('connection_type="s3", connection_options={"paths": ["s3://a/x", "s3://b/y"]}, format="json"', "exactly one"),
        ('connection_type="s3", connection_options={"paths": [args["nope"]]}, format="json"', "not in the getResolved"),
        ('connection_type="s3", connection_options={"paths": [some_function()]}, format="json"', "cannot be evaluated"),
    ],
)
def test_other_formats_connections_and_options_are_refused_with_the_line(source: str, expected: str) -> None:
    script = (
        input_script(
            f"""
        src = glueContext.create_dynamic_frame.from_options({source})
        mapped = ApplyMapping.apply(frame=src, mappings=[("id", "long", "order_id", "long")])
        """
        )
        + SINK
    )
    report = convert(script)
    refused = [i for i in items(report, UNSUPPORTED) if expected in i.message]
    assert refused, report.table()
    assert refused[0].line == line_of(script, "create_dynamic_frame")


def test_sink_format_and_partitioning_are_refused() -> None:
    script = input_script(
        """
        src = glueContext.create_dynamic_frame.from_options(connection_type="s3", connection_options={"paths": ["s3://raw/o"]}, format="json")
        mapped = ApplyMapping.apply(frame=src, mappings=[("id", "long", "order_id", "long")])
        glueContext.write_dynamic_frame.from_options(frame=mapped, connection_type="s3", connection_options={"path": "s3://b/st", "partitionKeys": ["dt"], "compression": "snappy"}, format="parquet")
        """  # noqa: E501
    )
    report = convert(script)
    line = line_of(script, "write_dynamic_frame")
    messages = [i.message for i in items(report, UNSUPPORTED) if i.line == line]
    assert any("format 'parquet'" in m for m in messages)
    assert {i.field for i in items(report, UNSUPPORTED) if i.line == line} >= {"step", "staging (partitionKeys)"}


def test_a_bad_mapping_type_is_reported_at_its_tuple() -> None:
    script = (
        input_script(
            """
        spec = [
            ("id", "long", "order_id", "long"),
            ("blob", "binary", "blob", "varchar"),
        ]
        src = glueContext.create_dynamic_frame.from_options(connection_type="s3", connection_options={"paths": ["s3://raw/o"]}, format="json")
        mapped = ApplyMapping.apply(frame=src, mappings=spec)
        """  # noqa: E501
        )
        + SINK
    )
    [bad] = items(convert(script), UNSUPPORTED, "input_job.mappings")
    assert bad.line == line_of(script, '("blob"') and "varchar" in bad.message


def test_input_without_bookmark_and_missing_commit_are_reported() -> None:
    script = input_script(
        """
        src = glueContext.create_dynamic_frame.from_options(connection_type="s3", connection_options={"paths": ["s3://raw/o"]}, format="json")
        mapped = ApplyMapping.apply(frame=src, mappings=[("id", "long", "order_id", "long")])
        """  # noqa: E501
    ) + SINK.replace("job.commit()\n", "")
    no_commit = PLAIN_OUTPUT.replace("job.commit()\n", "")
    report = convert(script, no_commit)
    assert report.entry["output_job"]["bookmark"] == "disable"
    [bookmark] = items(report, CONVERTED, "output_job.bookmark")
    assert "no job.commit()" in bookmark.message
    [input_bookmark] = items(report, NEEDS_USER, "input_job (bookmark)")
    assert "rereads all input" in input_bookmark.message


def test_unreadable_scripts_fail_with_one_line(tmp_path: Path, capsys) -> None:
    bad = write(tmp_path, "input.py", "datasource0 = (\n")
    good = write(tmp_path, "output.py", PLAIN_OUTPUT)
    code, _, stderr = import_glue(capsys, "--input-script", str(bad), "--output-script", str(good), "--flow", "x")
    assert code == 2 and stderr.count("\n") == 1 and stderr.startswith(f"glueflow: {bad}: line ")
    code, _, stderr = import_glue(
        capsys, "--input-script", str(tmp_path / "no.py"), "--output-script", str(good), "--flow", "x"
    )
    assert code == 2 and stderr.strip() == f"glueflow: {tmp_path / 'no.py'}: script not found"
    code, _, stderr = import_glue(capsys, "--output-script", str(good), "--flow", "x")
    assert code == 2 and "--input-script and --output-script" in stderr
    with pytest.raises(ImportGlueError, match="flow names must be identifiers"):
        convert_scripts("bad-name", PLAIN_OUTPUT, PLAIN_OUTPUT)


# --- Glue cron -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("glue", "cron"),
    [
        ("cron(0/30 * * * ? *)", "*/30 * * * *"),
        ("cron(15 12 * * ? *)", "15 12 * * *"),
        ("cron(5/10 * * * ? *)", "5-59/10 * * * *"),
        ("cron(0 8 ? * MON-FRI *)", "0 8 * * 1-5"),
        ("cron(0 18 ? * 2-6 *)", "0 18 * * 1-5"),  # Glue's 1-7 is SUN-SAT; cron's is 0-6
        ("cron(0 0 ? * 1,7 *)", "0 0 * * 0,6"),
        ("cron(0 10 1/5 * ? *)", "0 10 */5 * *"),
        ("cron(30 6 1 JAN,JUL ? *)", "30 6 1 1,7 *"),
    ],
)
def test_glue_cron_converts_to_five_fields(glue: str, cron: str) -> None:
    assert glue_cron_to_dagster(glue) == cron
    assert is_valid_cron_string(cron)


@pytest.mark.parametrize(
    ("glue", "reason"),
    [
        ("cron(0 12 L * ? *)", "uses L/W/#"),
        ("cron(0 12 15W * ? *)", "uses L/W/#"),
        ("cron(0 12 ? * 6#3 *)", "uses L/W/#"),
        ("cron(0 12 ? * 6L *)", "uses L/W/#"),
        ("cron(0 12 * * ? 2027)", "Year field '2027'"),
        ("cron(0 12 * * ?)", "6 fields"),
        ("rate(5 minutes)", "not a Glue cron"),
        ("cron(61 * * * ? *)", "not in 0-59"),
    ],
)
def test_glue_cron_without_a_five_field_equivalent_is_refused_in_one_line(glue: str, reason: str) -> None:
    with pytest.raises(GlueCronError) as caught:
        glue_cron_to_dagster(glue)
    assert reason in str(caught.value) and "\n" not in str(caught.value)


# --- --from-aws against the moto server ---------------------------------------------------------------


def _create_glue_flow(
    s3_client: Any,
    bucket: str,
    endpoint: str,
    schedule: str,
    output_script: str,
    max_runs: int = 1,
    condition: str = "SUCCEEDED",
) -> tuple[str, str]:
    """Scripts in moto S3, the two jobs and the guide's two triggers; returns the job names."""
    glue = boto3.client("glue", endpoint_url=endpoint, region_name="us-east-1")
    suffix = uuid.uuid4().hex[:8]
    input_job, output_job = f"Input-{suffix}", f"Output-{suffix}"
    s3_client.put_object(Bucket=bucket, Key="scripts/input.py", Body=GUIDE_INPUT.encode())
    s3_client.put_object(Bucket=bucket, Key="scripts/output.py", Body=output_script.encode())
    paths = {name: f"s3://{bucket}/{name}" for name in ("input", "staging", "output")}
    role = "arn:aws:iam::123456789012:role/GlueEtlRole"
    glue.create_job(
        Name=input_job,
        Role=role,
        Command={"Name": "glueetl", "ScriptLocation": f"s3://{bucket}/scripts/input.py", "PythonVersion": "3"},
        DefaultArguments={
            "--job-bookmark-option": "job-bookmark-enable",
            "--input_path": paths["input"],
            "--staging_path": paths["staging"],
            "--TempDir": f"s3://{bucket}/tmp/",
        },
        ExecutionProperty={"MaxConcurrentRuns": 1},
    )
    glue.create_job(
        Name=output_job,
        Role=role,
        Command={"Name": "glueetl", "ScriptLocation": f"s3://{bucket}/scripts/output.py", "PythonVersion": "3"},
        DefaultArguments={
            "--job-bookmark-option": "job-bookmark-enable",
            "--staging_path": paths["staging"],
            "--output_path": paths["output"],
        },
        ExecutionProperty={"MaxConcurrentRuns": max_runs},
    )
    glue.create_trigger(
        Name=f"every-30-{suffix}",
        Type="SCHEDULED",
        Schedule=schedule,
        Actions=[{"JobName": input_job}],
        StartOnCreation=True,
    )
    glue.create_trigger(
        Name=f"after-input-{suffix}",
        Type="CONDITIONAL",
        Predicate={
            "Logical": "AND",
            "Conditions": [{"LogicalOperator": "EQUALS", "JobName": input_job, "State": condition}],
        },
        Actions=[{"JobName": output_job}],
        StartOnCreation=True,
    )
    return input_job, output_job


def test_from_aws_reads_jobs_scripts_and_triggers_and_the_flow_runs_on_s3(
    tmp_path: Path,
    capsys,
    instance,
    moto_server: str,
    s3_client: Any,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    input_job, output_job = _create_glue_flow(
        s3_client, s3_bucket, moto_server, "cron(0/30 * * * ? *)", guide_output(fixed=True), max_runs=3
    )
    flow_file = tmp_path / "glueflow.yaml"
    args = ("--from-aws", "--input-job", input_job, "--output-job", output_job, "--flow", "events")
    code, stdout, stderr = import_glue(capsys, *args, "--out", str(flow_file), "--json")
    assert code == 0, stdout + stderr
    report = json.loads(stdout)
    assert report["sources"] == {
        "input": f"s3://{s3_bucket}/scripts/input.py",
        "output": f"s3://{s3_bucket}/scripts/output.py",
    }
    converted = {i["field"]: i for i in report["converted"]}
    assert converted["input_job.schedule"]["value"] == "*/30 * * * *"
    assert converted["input_job.schedule"]["source"].startswith("trigger every-30-")
    assert "Output sensor" in converted["output_job (trigger)"]["message"]
    assert converted["output_job.bookmark"]["value"] == "enable"
    [concurrency] = [i for i in report["needs_user"] if i["field"] == "max concurrency"]
    assert concurrency["value"] == 3 and concurrency["source"] == f"Glue job {output_job}"
    assert any(i["message"].startswith("--TempDir") for i in report["needs_user"])
    assert {v["name"]: v["default"] for v in report["variables"]} == {
        "input_path": f"s3://{s3_bucket}/input",
        "staging_path": f"s3://{s3_bucket}/staging",
        "output_path": f"s3://{s3_bucket}/output",
    }
    [iam] = [i for i in report["needs_user"] if i["field"] == "iam"]
    assert "GlueEtlRole" in iam["message"]

    # The job's default arguments become ${VAR:-default}: the flow loads and runs with no variable set.
    entry = yaml.safe_load(flow_file.read_text())["flows"]["events"]
    assert entry["input"]["uri"] == f"${{input_path:-s3://{s3_bucket}/input}}"
    from glueflow_dagster.definitions import build_definitions

    config = load_config(flow_file)
    flow = config.flows["events"]
    assert flow.input_job.schedule == "*/30 * * * *" and flow.staging.uri == f"s3://{s3_bucket}/staging"
    defs = build_definitions(config)
    figures, _ = run_cycle(defs, instance, flow, 0, None, files=2, events_per_file=200)
    assert figures.ratio == pytest.approx(1.0) and len(figures.output_run_ids) == 1
    listed = [o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_bucket, Prefix="output/")["Contents"]]
    keys = [key for key in listed if not key.startswith("output/_glueflow/")]  # commits, the chart
    assert len(keys) == 1 and keys[0].startswith("output/run-") and keys[0].endswith("-part-r-00000.json")


def test_from_aws_refuses_a_glue_cron_without_five_field_equivalent(
    tmp_path: Path, capsys, moto_server: str, s3_client: Any, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    input_job, output_job = _create_glue_flow(
        s3_client, s3_bucket, moto_server, "cron(0 12 L * ? *)", guide_output(fixed=True)
    )
    flow_file = tmp_path / "glueflow.yaml"
    args = (
        "--from-aws",
        "--input-job",
        input_job,
        "--output-job",
        output_job,
        "--flow",
        "events",
        "--out",
        str(flow_file),
    )
    code, stdout, stderr = import_glue(capsys, *args)
    assert code == 1 and not flow_file.exists()
    [line] = [row for row in stdout.splitlines() if "input_job.schedule" in row]
    assert "day-of-month 'L' uses L/W/#" in line and "no five-field cron equivalent" in line
    assert "1 construct(s) not converted" in stderr
    # --allow-partial writes the rest with the default schedule, and says so.
    code, stdout, _ = import_glue(capsys, *args, "--allow-partial")
    assert code == 0 and load_config(flow_file).flows["events"].input_job.schedule == "*/30 * * * *"


def test_from_aws_missing_job_is_one_line(capsys, moto_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    code, _, stderr = import_glue(
        capsys, "--from-aws", "--input-job", "NoSuchJob", "--output-job", "Nope", "--flow", "x"
    )
    assert code == 2 and stderr.count("\n") == 1
    assert stderr.startswith("glueflow: AWS GetJob 'NoSuchJob': EntityNotFoundException")


def test_glue_studio_script_with_string_formatting_and_an_unused_helper() -> None:
    """What Glue Studio generates (node names, a helper def, empty partitionKeys) plus common path idioms."""
    script = input_script(
        """
        def sparkSqlQuery(glueContext, query, mapping, transformation_ctx) -> DynamicFrame:
            for alias, frame in mapping.items():
                frame.toDF().createOrReplaceTempView(alias)
            result = spark.sql(query)
            return DynamicFrame.fromDF(result, glueContext, transformation_ctx)

        raw = "s3://{}/{env}/raw/".format(args["bucket"], env=args.get("env"))
        S3bucket_node1 = glueContext.create_dynamic_frame.from_options(
            format_options={"multiline": False},
            connection_type="s3",
            format="json",
            connection_options={"paths": [raw], "recurse": True, "exclusions": json.dumps(["**/_temporary/**"])},
            transformation_ctx="S3bucket_node1",
        )
        ApplyMapping_node2 = ApplyMapping.apply(
            frame=S3bucket_node1,
            mappings=[("id", "long", "order_id", "long"), ("state", "string", "status", "string")],
            transformation_ctx="ApplyMapping_node2",
        )
        S3bucket_node3 = glueContext.write_dynamic_frame.from_options(
            frame=ApplyMapping_node2,
            connection_type="s3",
            format="json",
            connection_options={"path": "/".join(["s3:/", args["bucket"], "staging"]), "partitionKeys": []},
            transformation_ctx="S3bucket_node3",
        )
        job.commit()
        """
    )
    output = PLAIN_OUTPUT.replace(
        '"s3://" + args["bucket"] + "/out"', '"s3://%s/%s/out" % (args["bucket"], args["env"])'
    )
    output = output.replace(
        "f\"s3://{args['bucket']}/{args['env']}/staging/\"", '"s3://" + args["bucket"] + "/staging"'
    )
    report = convert(script, output)
    assert report.complete, report.table()
    assert report.entry["input"] == {
        "uri": "s3://${bucket}/${env}/raw/",
        "recurse": True,
        "exclusions": ["**/_temporary/**"],
    }
    assert report.entry["staging"]["uri"] == "s3://${bucket}/staging"
    assert report.entry["output"]["uri"] == "s3://${bucket}/${env}/out"
    [helper] = [i for i in items(report, NEEDS_USER, "step") if "sparkSqlQuery" in i.message]
    assert helper.line == line_of(script, "def sparkSqlQuery")
    [bookmark] = items(report, CONVERTED, "input_job (bookmark)")
    assert bookmark.value == "S3bucket_node1"
    # Calling the helper is a step glueflow cannot convert: reported at the call.
    called = script.replace(
        "ApplyMapping_node2 = ApplyMapping.apply(\n    frame=S3bucket_node1,",
        "SQL = sparkSqlQuery(glueContext, 'select * from o', {'o': S3bucket_node1}, 'sql')\n"
        "ApplyMapping_node2 = ApplyMapping.apply(\n    frame=SQL,",
    )
    assert called != script
    refused = convert(called, output)
    [sql] = items(refused, UNSUPPORTED)
    assert sql.line == line_of(called, "SQL = ") and "sparkSqlQuery" in sql.message


def test_from_aws_reports_a_conditional_trigger_that_is_not_the_output_sensor(
    capsys, moto_server: str, s3_client: Any, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    input_job, output_job = _create_glue_flow(
        s3_client, s3_bucket, moto_server, "cron(15 6 ? * MON-FRI *)", guide_output(fixed=True), condition="FAILED"
    )
    glue = boto3.client("glue", endpoint_url=moto_server, region_name="us-east-1")
    glue.create_trigger(
        Name=f"by-hand-{input_job}",
        Type="ON_DEMAND",
        Actions=[{"JobName": input_job, "Arguments": {"--input_path": f"s3://{s3_bucket}/backfill"}}],
    )
    args = ("--from-aws", "--input-job", input_job, "--output-job", output_job, "--flow", "events", "--json")
    code, stdout, _ = import_glue(capsys, *args)
    assert code == 1
    report = json.loads(stdout)
    [schedule] = [i for i in report["converted"] if i["field"] == "input_job.schedule"]
    assert schedule["value"] == "15 6 * * 1-5"
    refused = {i["field"]: i for i in report["unsupported"]}
    assert f"{input_job} FAILED" in refused["output_job (trigger)"]["message"]
    assert refused["trigger"]["message"].startswith(f"ON_DEMAND trigger starting {input_job}")
    [passed] = [i for i in report["needs_user"] if i["field"] == "trigger argument"]
    assert passed["value"] == f"s3://{s3_bucket}/backfill" and "environment variable input_path" in passed["message"]


def test_catalog_location_and_conflicting_options_on_the_command_line(tmp_path: Path, capsys) -> None:
    script = (
        input_script(
            """
        src = glueContext.create_dynamic_frame.from_catalog(database="sales", table_name="raw_orders")
        mapped = ApplyMapping.apply(frame=src, mappings=[("id", "long", "order_id", "long")])
        """
        )
        + SINK
    )
    inp = write(tmp_path, "input.py", script)
    out = write(tmp_path, "output.py", PLAIN_OUTPUT)
    base = ("--input-script", str(inp), "--output-script", str(out), "--flow", "orders", "--json")
    code, stdout, _ = import_glue(capsys, *base)
    assert code == 1 and "--catalog-location sales.raw_orders=" in stdout
    code, stdout, _ = import_glue(capsys, *base, "--catalog-location", "sales.raw_orders=s3://lake/orders/")
    assert code == 0 and json.loads(stdout)["flow_entry"]["input"]["uri"] == "s3://lake/orders/"
    code, _, stderr = import_glue(capsys, *base, "--catalog-location", "sales.raw_orders")
    assert (
        code == 2 and stderr.strip() == "glueflow: --catalog-location 'sales.raw_orders': expected DATABASE.TABLE=URI"
    )
    code, _, stderr = import_glue(capsys, *base, "--from-aws", "--input-job", "a", "--output-job", "b")
    assert code == 2 and "--from-aws takes --input-job and --output-job (and no --*-script)" in stderr


# --- nothing is silently dropped, whatever the script looks like ----------------------------------------

NOISE = [
    'kept = Filter.apply(frame=datasource0, f=lambda row: row["id"] > 0)',
    'datasource0 = datasource0.resolveChoice(specs=[("amount", "cast:double")])',
    "for part in range(3):\n    pass",
    'frame = DynamicFrame.fromDF(spark.sql("select 1"), glueContext, "sql")',
    'applymapping1 = Join.apply(applymapping1, datasource0, "id", "id")',
    'glueContext.write_dynamic_frame.from_catalog(frame=applymapping1, database="db", table_name="t")',
]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_mix_of_the_guide_and_unsupported_statements_is_reported_line_by_line(data: st.DataObject) -> None:
    import ast as python_ast

    statements = [python_ast.get_source_segment(GUIDE_INPUT, s) for s in python_ast.parse(GUIDE_INPUT).body]
    kept = data.draw(st.lists(st.sampled_from(range(len(statements))), unique=True).map(sorted))
    body = [statements[i] for i in kept]
    noise = data.draw(st.lists(st.sampled_from(NOISE), max_size=3))
    for statement in noise:
        body.insert(data.draw(st.integers(0, len(body))), statement)
    script = "\n".join(s for s in body if s is not None) + "\n"
    report = convert_scripts("events", script, guide_output(fixed=True))  # never raises on valid Python
    refused_lines = {i.line for i in report.of(UNSUPPORTED) if i.source == "input.py"}
    for statement in noise:
        first = statement.splitlines()[0]
        assert line_of(script, first) in refused_lines, (first, report.table())
    if report.complete:
        # Complete means: source, mapping and sink all converted into a valid flow (convert_scripts validated it).
        assert report.entry["input"]["uri"] == "${input_path}" and report.entry["input_job"]["mappings"]


def test_allow_partial_writes_nothing_when_what_converted_is_not_a_complete_flow(tmp_path: Path, capsys) -> None:
    script = (
        input_script(
            """
        src = glueContext.create_dynamic_frame.from_catalog(database="sales", table_name="raw_orders")
        mapped = ApplyMapping.apply(frame=src, mappings=[("id", "long", "order_id", "long")])
        """
        )
        + SINK
    )
    inp = write(tmp_path, "input.py", script)
    out = write(tmp_path, "output.py", PLAIN_OUTPUT)
    flow_file = tmp_path / "glueflow.yaml"
    code, stdout, stderr = import_glue(
        capsys,
        *("--input-script", str(inp), "--output-script", str(out), "--flow", "orders", "--out", str(flow_file)),
        "--allow-partial",
    )
    assert code == 1 and not flow_file.exists()
    assert "from_catalog(sales.raw_orders)" in stdout  # the report is still printed
    assert stderr.strip() == (
        "glueflow: nothing written: what converted is not a complete flow: "
        "import-glue: flow 'orders'.input.uri: expected a non-empty string, got None"
    )


def test_the_glueflow_command_as_a_user_runs_it(tmp_path: Path) -> None:
    """A subprocess with this checkout first on the path (the installed package may be another checkout)."""
    import os
    import subprocess
    import sys

    import glueflow_dagster

    inp = write(tmp_path, "input.py", GUIDE_INPUT)
    out = write(tmp_path, "output.py", guide_output(fixed=False))
    root = str(Path(glueflow_dagster.__file__).resolve().parent.parent)
    environ = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "GLUEFLOW_CONFIG")}
    done = subprocess.run(
        [sys.executable, "-m", "glueflow_dagster.cli", "import-glue", "--input-script", "input.py"]
        + ["--output-script", "output.py", "--flow", "events", "--out", "flows/glueflow.yaml"],
        cwd=tmp_path,
        env={**environ, "PYTHONPATH": root},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "flow 'events' written to flows/glueflow.yaml" in done.stdout
    assert f"{inp.name}:{line_of(GUIDE_INPUT, 'create_dynamic_frame')}" in done.stdout
    assert yaml.safe_load((tmp_path / "flows" / "glueflow.yaml").read_text())["flows"]["events"]["output_job"] == {
        "bookmark": "disable",
        "mappings": OUTPUT_MAPPINGS,
    }
    assert out.exists()


def test_glue_reader_options_become_location_keys() -> None:
    script = (
        input_script(
            """
        src = glueContext.create_dynamic_frame.from_options(connection_type="s3",
            connection_options={"paths": ["s3://raw/o"]}, format="json",
            format_options={"multiline": True, "jsonPath": "$.records[*]"})
        mapped = ApplyMapping.apply(frame=src, mappings=[("id", "long", "order_id", "long")])
        """
        )
        + SINK
    )
    report = convert(script)
    assert not items(report, UNSUPPORTED), report.table()
    converted = {i.field: i.value for i in items(report, CONVERTED)}
    assert converted["input.multiline"] is True and converted["input.jsonPath"] == "$.records[*]"
