"""Scripts as people write them: variations of sources, mappings and sinks, each converted or reported.

Nothing is silently dropped: every construct glueflow cannot convert is reported with its line, and
the command exits non-zero unless `--allow-partial` writes what converted.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glueflow_dagster.glue_import import CONVERTED, DEFAULT, NEEDS_USER, UNSUPPORTED, ImportGlueError, convert_scripts
from glueflow_dagster_tests.glue_import.glue_scripts import (
    GUIDE_INPUT,
    PLAIN_OUTPUT,
    SINK,
    convert,
    guide_output,
    import_glue,
    input_script,
    items,
    line_of,
    write,
)


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
    assert any("format is not known" in i.message for i in items(given, NEEDS_USER))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('connection_type="s3", connection_options={"paths": ["s3://raw/o"]}, format="orc"', "format 'orc'"),
        ('connection_type="s3", connection_options={"paths": ["s3://raw/o"]}, format="avro"', "format 'avro'"),
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
        glueContext.write_dynamic_frame.from_options(frame=mapped, connection_type="s3", connection_options={"path": "s3://b/st", "partitionKeys": ["dt"], "compression": "snappy"}, format="orc")
        """  # noqa: E501
    )
    report = convert(script)
    line = line_of(script, "write_dynamic_frame")
    messages = [i.message for i in items(report, UNSUPPORTED) if i.line == line]
    assert any("format 'orc'" in m for m in messages)
    # dt is not a mapped column: Glue fails the run (the flow file would refuse it too)
    assert {i.field for i in items(report, UNSUPPORTED) if i.line == line} >= {"step", "staging.partition_keys"}


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
        "uri": "s3://${bucket}/${INPUT_ENV}/raw/",
        "recurse": True,
        "exclusions": ["**/_temporary/**"],
    }
    assert report.entry["staging"]["uri"] == "s3://${bucket}/staging"
    # Each job's --env is its own value (only staging's path, which chains the jobs, shares arguments).
    assert report.entry["output"]["uri"] == "s3://${bucket}/${OUTPUT_ENV}/out"
    [helper] = [i for i in items(report, NEEDS_USER, "step") if "sparkSqlQuery" in i.message]
    assert helper.line == line_of(script, "def sparkSqlQuery")
    # The script's transformation_ctx asks for a bookmark; without --from-aws the job's option is unknown.
    [bookmark] = items(report, NEEDS_USER, "input_job (bookmark)")
    assert bookmark.value == "S3bucket_node1" and "--job-bookmark-option job-bookmark-enable" in bookmark.message
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
    'datasource0 = datasource0.resolveChoice(specs=[("amount", "cast:long")])',
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
