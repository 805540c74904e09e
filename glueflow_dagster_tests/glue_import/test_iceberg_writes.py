"""The Output job's Iceberg writes of a Spark DataFrame (issue 26 item 2, issue 24's tables):
`df.writeTo("glue_catalog.db.table").append()` and `glueContext.write_data_frame.from_catalog(...)` convert to
`format: iceberg` (catalog glue, table, warehouse) when the job's Spark settings (the script's, its `--conf`
parameter given with `--conf` or read with `--from-aws`) or GetTable say all that is needed; else they are
refused at the write's line with the exact options to pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from glueflow_dagster.core.config import load_config
from glueflow_dagster.glue_import import UNSUPPORTED, AwsFacts, AwsJob, convert_scripts, write_flow_file
from glueflow_dagster_tests.components.test_iceberg_output import s3_completes_multipart_uploads_as_s3_does  # noqa: F401 - a fixture
from glueflow_dagster_tests.glue_import.glue_scripts import GLUE_HEADER, import_glue, items, line_of, write

INPUT = (
    GLUE_HEADER
    + """
args = getResolvedOptions(sys.argv, ["JOB_NAME"])
glueContext = GlueContext(SparkContext.getOrCreate())
job = Job(glueContext)
job.init(args["JOB_NAME"], args)
raw = glueContext.create_dynamic_frame.from_options(
    connection_type="s3", connection_options={"paths": ["s3://shop-raw/orders/"], "recurse": True}, format="json"
)
mapped = ApplyMapping.apply(
    frame=raw, mappings=[("id", "string", "id", "long"), ("total", "string", "total", "double")]
)
glueContext.write_dynamic_frame.from_options(
    frame=mapped, connection_type="s3", connection_options={"path": "s3://shop-work/staging/orders/"}, format="json"
)
job.commit()
"""
)

ICEBERG_CONF = """conf = SparkConf()
conf.set("spark.sql.extensions", "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions")
conf.set("spark.sql.catalog.glue_catalog", "org.apache.iceberg.spark.SparkCatalog")
conf.set("spark.sql.catalog.glue_catalog.warehouse", "s3://shop-lake/warehouse/")
conf.set("spark.sql.catalog.glue_catalog.catalog-impl", "org.apache.iceberg.aws.glue.GlueCatalog")
conf.set("spark.sql.catalog.glue_catalog.io-impl", "org.apache.iceberg.aws.s3.S3FileIO")
sc = SparkContext(conf=conf)
"""
JOB_CONF = (
    "spark.sql.catalog.glue_catalog=org.apache.iceberg.spark.SparkCatalog "
    "--conf spark.sql.catalog.glue_catalog.catalog-impl=org.apache.iceberg.aws.glue.GlueCatalog "
    "--conf spark.sql.catalog.glue_catalog.warehouse=s3://shop-lake/warehouse"
)
WRITE_TO = 'df = mapped.toDF()\ndf.writeTo("glue_catalog.shop.orders").append()\n'
WRITE_DATA_FRAME = (
    'glueContext.write_data_frame.from_catalog(frame=mapped.toDF(), database="shop", table_name="orders")\n'
)


def output_script(write_lines: str, conf: str = ICEBERG_CONF) -> str:
    return (
        GLUE_HEADER
        + "from pyspark.conf import SparkConf\n"
        + 'args = getResolvedOptions(sys.argv, ["JOB_NAME"])\n'
        + (conf or "sc = SparkContext()\n")
        + "glueContext = GlueContext(sc)\n"
        + "job = Job(glueContext)\n"
        + 'job.init(args["JOB_NAME"], args)\n'
        + "staged = glueContext.create_dynamic_frame.from_options(connection_type='s3', format='json', "
        + "connection_options={'paths': ['s3://shop-work/staging/orders/'], 'recurse': True}, "
        + "transformation_ctx='orders_staging')\n"
        + "mapped = ApplyMapping.apply(frame=staged, mappings=[('id', 'long', 'id', 'long'), "
        + "('total', 'double', 'total', 'double')])\n"
        + write_lines
        + "job.commit()\n"
    )


ICEBERG_OUTPUT = {
    "uri": "s3://shop-lake/warehouse",
    "format": "iceberg",
    "table": "shop.orders",
    "catalog": {"type": "glue"},
}


def refused(report: Any) -> list[Any]:
    return items(report, UNSUPPORTED)


def test_write_to_append_with_the_scripts_spark_settings_converts_and_loads(tmp_path: Path) -> None:
    out = output_script(WRITE_TO)
    report = convert_scripts("orders", INPUT, out)
    assert report.complete, report.table()
    assert report.entry["output"] == ICEBERG_OUTPUT
    assert report.entry["output_job"]["bookmark"] == "enable"
    flow = load_config(write_flow_file(report, tmp_path / "glueflow.yaml")).flows["orders"]
    assert flow.output.format == "iceberg" and flow.output.table == "shop.orders"
    assert dict(flow.output.catalog) == {"type": "glue"}
    [table] = [i for i in report.items if i.field == "output.table"]
    assert table.line == line_of(out, "writeTo")


def test_write_to_without_settings_names_the_exact_conf_then_converts_with_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = output_script(WRITE_TO, conf="")
    report = convert_scripts("orders", INPUT, out)
    [item] = refused(report)
    assert item.line == line_of(out, "writeTo") and item.field == "output.format"
    assert (
        "--conf spark.sql.catalog.glue_catalog=org.apache.iceberg.spark.SparkCatalog "
        "--conf spark.sql.catalog.glue_catalog.catalog-impl=org.apache.iceberg.aws.glue.GlueCatalog "
        "--conf spark.sql.catalog.glue_catalog.warehouse=s3://bucket/prefix" in item.message
    )
    given = convert_scripts("orders", INPUT, out, job_parameters={"--conf": JOB_CONF})
    assert given.complete, given.table()
    assert given.entry["output"] == ICEBERG_OUTPUT
    # the real command: refused (exit 1, nothing written), then converted with the job's --conf pasted as is
    scripts = ["--input-script", str(write(tmp_path, "in.py", INPUT)), "--output-script"]
    scripts += [str(write(tmp_path, "out.py", out)), "--flow", "orders", "--out", str(tmp_path / "glueflow.yaml")]
    code, _out, err = import_glue(capsys, *scripts)
    assert code == 1 and not (tmp_path / "glueflow.yaml").exists(), err
    code, stdout, err = import_glue(capsys, *scripts, "--conf", JOB_CONF)
    assert code == 0, stdout + err
    flow = load_config(tmp_path / "glueflow.yaml").flows["orders"]
    assert flow.output.format == "iceberg" and str(flow.output.uri) == "s3://shop-lake/warehouse"


def assert_write_refused(out: str, word: str, *, at: str) -> None:
    """The Output script converts to no output, refused with ``word`` in a message at the line holding ``at``."""
    report = convert_scripts("orders", INPUT, out)
    assert not report.complete and report.entry["output"] == {}, out
    assert any(word in i.message and i.line == line_of(out, at) for i in refused(report)), report.table()


def test_only_append_converts_other_writes_and_options_are_refused_at_their_line() -> None:
    for chain, word in (
        (".overwritePartitions()", "overwritePartitions"),
        (".createOrReplace()", "createOrReplace"),
        (".option('merge-schema', 'true').append()", "option"),
        (".tableProperty('format-version', '2').append()", "tableProperty"),
        ("", "without append()"),
    ):
        out = output_script(f'df = mapped.toDF()\ndf.writeTo("glue_catalog.shop.orders"){chain}\n')
        assert_write_refused(out, word, at="writeTo")
    using = convert_scripts(
        "orders", INPUT, output_script('mapped.toDF().writeTo("glue_catalog.shop.orders").using("iceberg").append()\n')
    )
    assert using.complete and using.entry["output"] == ICEBERG_OUTPUT, using.table()


@pytest.mark.parametrize(
    ("conf", "why"),
    [
        (ICEBERG_CONF.replace("aws.glue.GlueCatalog", "hadoop.HadoopCatalog"), "Glue's catalog"),
        (ICEBERG_CONF.replace('"org.apache.iceberg.spark.SparkCatalog"', '"org.example.Other"'), "not an Iceberg"),
        (
            ICEBERG_CONF.replace("sc = ", 'conf.set("spark.sql.catalog.glue_catalog.glue.id", "123456789012")\nsc = '),
            "glue.id",
        ),
        (ICEBERG_CONF.replace("s3://shop-lake/warehouse/", "file:///tmp/wh"), "not an s3:// warehouse"),
    ],
)
def test_catalogs_glueflow_cannot_write_are_refused(conf: str, why: str) -> None:
    report = convert_scripts("orders", INPUT, output_script(WRITE_TO, conf=conf))
    assert not report.complete
    assert any(why in f"{i.field} {i.message}" for i in refused(report)), report.table()


def test_write_to_refused_on_the_input_job_on_a_dynamic_frame_and_with_a_variable_table() -> None:
    staging = INPUT.replace(
        'glueContext.write_dynamic_frame.from_options(\n    frame=mapped, connection_type="s3", connection_options='
        '{"path": "s3://shop-work/staging/orders/"}, format="json"\n)\n',
        WRITE_TO,
    )
    report = convert_scripts("orders", staging, output_script(WRITE_TO))
    assert any("glueflow's staging is files" in i.message and i.source == "input.py" for i in refused(report))
    dynamic = output_script('mapped.writeTo("glue_catalog.shop.orders").append()\n')
    report = convert_scripts("orders", INPUT, dynamic)
    assert any("the frame is a DynamicFrame" in i.message for i in refused(report)), report.table()
    variable = output_script('df = mapped.toDF()\ndf.writeTo("glue_catalog.shop." + args["table"]).append()\n')
    variable = variable.replace('["JOB_NAME"])', '["JOB_NAME", "table"])')
    report = convert_scripts("orders", INPUT, variable)
    assert any("must be a literal string" in i.message for i in refused(report)), report.table()


def test_a_dataframe_back_into_a_dynamic_frame_stays_refused() -> None:
    out = output_script(
        "df = mapped.toDF()\nback = DynamicFrame.fromDF(df, glueContext, 'back')\n"
        "glueContext.write_dynamic_frame.from_options(frame=back, connection_type='s3', "
        "connection_options={'path': 's3://shop-lake/orders/'}, format='json')\n"
    )
    report = convert_scripts("orders", INPUT, out)
    assert not report.complete
    lines = {i.line for i in refused(report)}
    assert line_of(out, "fromDF") in lines, report.table()
    # a DataFrame transform between toDF and the write is reported at its own line (and only there)
    out = output_script('df = mapped.toDF().withColumn("x", lit(1))\ndf.writeTo("glue_catalog.shop.orders").append()\n')
    report = convert_scripts("orders", INPUT, out)
    assert [i.line for i in refused(report)] == [line_of(out, "withColumn")], report.table()


def test_spark_settings_that_change_what_is_read_or_written_are_refused_at_their_line() -> None:
    """SparkSession.builder.config(...) was read as set-up and dropped; a setting like caseSensitive changes
    which fields ApplyMapping finds, so every setting glueflow does not know is reported."""
    conf = (
        "spark = SparkSession.builder.config('spark.sql.caseSensitive', 'true')"
        ".config('spark.executor.memory', '4g').getOrCreate()\nsc = spark.sparkContext\n"
        "spark.conf.set('spark.sql.session.timeZone', 'America/New_York')\n"
    )
    out = output_script(
        "glueContext.write_dynamic_frame.from_options(frame=mapped, connection_type='s3', "
        "connection_options={'path': 's3://shop-lake/orders/'}, format='json')\n",
        conf=conf,
    )
    report = convert_scripts("orders", INPUT, out)
    assert sorted((i.field, i.line) for i in refused(report)) == [
        ("spark setting spark.sql.caseSensitive", line_of(out, "SparkSession.builder")),
        ("spark setting spark.sql.session.timeZone", line_of(out, "spark.conf.set")),
    ]


def test_write_data_frame_from_catalog_needs_the_datalake_format_then_converts() -> None:
    out = output_script(WRITE_DATA_FRAME, conf="")
    report = convert_scripts("orders", INPUT, out)
    [item] = refused(report)
    assert item.line == line_of(out, "write_data_frame")
    assert "--datalake-formats iceberg --conf spark.sql.catalog.glue_catalog.warehouse=s3://bucket/prefix" in (
        item.message
    )
    given = convert_scripts("orders", INPUT, out, job_parameters={"--conf": JOB_CONF, "--datalake-formats": "iceberg"})
    assert given.complete and given.entry["output"] == ICEBERG_OUTPUT, given.table()
    hudi = convert_scripts("orders", INPUT, out, job_parameters={"--conf": JOB_CONF, "--datalake-formats": "hudi"})
    assert not hudi.complete
    # the script's own settings say it is an Iceberg Glue catalog: enough without --datalake-formats
    assert convert_scripts("orders", INPUT, output_script(WRITE_DATA_FRAME)).entry["output"] == ICEBERG_OUTPUT


@pytest.fixture
def glue() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("glue", region_name="us-east-1")
        client.create_database(DatabaseInput={"Name": "shop"})
        yield client


def _table(glue: Any, location: str, table_type: str) -> None:
    glue.create_table(
        DatabaseName="shop",
        TableInput={
            "Name": "orders",
            "StorageDescriptor": {"Columns": [{"Name": "id", "Type": "bigint"}], "Location": location},
            "Parameters": {"table_type": table_type},
        },
    )


def _facts(glue: Any, output_arguments: dict[str, str] | None = None) -> AwsFacts:
    output = AwsJob("Out", "s3://scripts/out.py", default_arguments=output_arguments or {})
    return AwsFacts(AwsJob("In", "s3://scripts/in.py"), output, glue=glue)


def test_from_aws_reads_the_table_with_get_table_and_the_jobs_conf(glue: Any) -> None:
    _table(glue, "s3://shop-lake/tables/shop.db/orders", "ICEBERG")
    report = convert_scripts("orders", INPUT, output_script(WRITE_DATA_FRAME, conf=""), aws=_facts(glue))
    assert report.complete, report.table()
    assert report.entry["output"] == {**ICEBERG_OUTPUT, "uri": "s3://shop-lake/tables/shop.db"}
    # writeTo: the catalog comes from the job's --conf DefaultArguments, the location from GetTable
    arguments = {"--conf": JOB_CONF, "--datalake-formats": "iceberg"}
    report = convert_scripts("orders", INPUT, output_script(WRITE_TO, conf=""), aws=_facts(glue, arguments))
    assert report.complete and report.entry["output"]["uri"] == "s3://shop-lake/tables/shop.db", report.table()
    report = convert_scripts("orders", INPUT, output_script(WRITE_TO, conf=""), aws=_facts(glue))
    assert not report.complete  # no catalog settings anywhere: the job itself could not write glue_catalog


def test_from_aws_a_hudi_table_or_a_missing_table_is_refused(glue: Any) -> None:
    _table(glue, "s3://shop-lake/tables/orders", "HUDI")
    report = convert_scripts("orders", INPUT, output_script(WRITE_DATA_FRAME, conf=""), aws=_facts(glue))
    assert any("holds hudi, not Iceberg" in i.message for i in refused(report)), report.table()
    glue.delete_table(DatabaseName="shop", Name="orders")
    report = convert_scripts("orders", INPUT, output_script(WRITE_DATA_FRAME, conf=""), aws=_facts(glue))
    assert any("GetTable shop.orders" in i.message for i in refused(report)), report.table()


def test_a_jobs_conf_parameter_is_judged_setting_by_setting(glue: Any) -> None:
    """`--conf` from the job (--from-aws) or the command line: a setting that may change what is read or written
    is refused (it was "not carried over", needs the user, and exited 0); catalog settings are defaults."""
    _table(glue, "s3://shop-lake/tables/shop.db/orders", "ICEBERG")
    arguments = {"--conf": JOB_CONF + " --conf spark.sql.caseSensitive=true"}
    report = convert_scripts("orders", INPUT, output_script(WRITE_TO, conf=""), aws=_facts(glue, arguments))
    assert [(i.field, i.source) for i in refused(report)] == [("spark setting spark.sql.caseSensitive", "Glue job Out")]
    given = convert_scripts("orders", INPUT, output_script(WRITE_TO, conf=""), job_parameters=arguments)
    assert [(i.field, i.source) for i in refused(given)] == [("spark setting spark.sql.caseSensitive", "--conf")]
    assert convert_scripts(
        "orders", INPUT, output_script(WRITE_TO, conf=""), job_parameters={"--conf": JOB_CONF}
    ).complete


def test_a_converted_write_to_flow_appends_to_the_iceberg_table_in_glues_catalog(
    tmp_path: Path, instance: Any, moto_server: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch, request: Any
) -> None:
    """The converted flow runs (moto's S3 and Glue Data Catalog over HTTP): the Output job appends the run's
    records to shop.orders under the script's warehouse, as the Glue job's writeTo(...).append() does."""
    from glueflow_dagster.components.jobs import INPUT_RUN_TAG
    from glueflow_dagster.components.resources import StorageResource
    from glueflow_dagster.core.iceberg_table import IcebergTarget, open_catalog
    from glueflow_dagster.definitions import load_definitions
    from glueflow_dagster_tests.components.test_assets import run_job

    request.getfixturevalue("s3_completes_multipart_uploads_as_s3_does")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    request.addfinalizer(_drop_shop_database)
    inp = INPUT.replace("s3://shop-raw/orders/", f"s3://{s3_bucket}/raw/")
    inp = inp.replace("s3://shop-work/staging/orders/", f"s3://{s3_bucket}/staging/")
    out = output_script(WRITE_TO).replace("s3://shop-work/staging/orders/", f"s3://{s3_bucket}/staging/")
    out = out.replace("s3://shop-lake/warehouse/", f"s3://{s3_bucket}/warehouse/")
    report = convert_scripts("orders", inp, out)
    assert report.complete, report.table()
    defs = load_definitions(write_flow_file(report, tmp_path / "glueflow.yaml"))
    lines = "".join(f'{{"id": "{i}", "total": "{i}.5"}}\n' for i in range(30))
    StorageResource().open(f"s3://{s3_bucket}/raw").write_bytes("a.json", lines.encode())
    input_run = run_job(defs, instance, "orders_input_job")
    run_job(defs, instance, "orders_output_job", tags={INPUT_RUN_TAG: input_run})
    warehouse = f"s3://{s3_bucket}/warehouse"
    target = IcebergTarget("shop.orders", warehouse, {"type": "glue", "s3.endpoint": moto_server})
    table = open_catalog(target).load_table(target.identifier)
    rows = table.scan().to_arrow().sort_by("id").to_pylist()
    assert rows == [{"id": i, "total": i + 0.5} for i in range(30)]
    assert table.location().startswith(warehouse + "/")


def _drop_shop_database() -> None:
    glue = boto3.client("glue")
    for table in glue.get_tables(DatabaseName="shop")["TableList"]:
        glue.delete_table(DatabaseName="shop", Name=table["Name"])
    glue.delete_database(Name="shop")


def test_settings_on_a_spark_conf_never_given_to_spark_change_nothing() -> None:
    """Spark copies a SparkConf when the SparkContext is made: settings on one never given to it (or set after)
    have no effect, so they neither configure the catalog nor are refused."""
    unused = ICEBERG_CONF.replace("sc = SparkContext(conf=conf)", "sc = SparkContext()")
    report = convert_scripts("orders", INPUT, output_script(WRITE_TO, conf=unused))
    assert not report.complete and "not an Iceberg catalog" in refused(report)[0].message, report.table()
    inline = (
        "sc = SparkContext.getOrCreate(conf=SparkConf().setAll(["
        + ", ".join(
            f'("{k}", "{v}")'
            for k, v in (
                ("spark.sql.catalog.glue_catalog", "org.apache.iceberg.spark.SparkCatalog"),
                ("spark.sql.catalog.glue_catalog.catalog-impl", "org.apache.iceberg.aws.glue.GlueCatalog"),
                ("spark.sql.catalog.glue_catalog.warehouse", "s3://shop-lake/warehouse"),
            )
        )
        + "]))\nconf = SparkConf().set('spark.sql.caseSensitive', 'true')\n"
    )
    report = convert_scripts("orders", INPUT, output_script(WRITE_TO, conf=inline))
    assert report.complete and report.entry["output"] == ICEBERG_OUTPUT, report.table()
    builder = "spark = SparkSession.builder.config(conf=conf).getOrCreate()\nsc = spark.sparkContext\n"
    report = convert_scripts("orders", INPUT, output_script(WRITE_TO, conf=ICEBERG_CONF.split("sc = ")[0] + builder))
    assert report.complete and report.entry["output"] == ICEBERG_OUTPUT, report.table()


def test_sparks_older_writer_in_append_mode_is_the_same_append() -> None:
    """`df.write.format("iceberg").mode("append").saveAsTable(...)` appends by column name as writeTo(...).append()
    does; another mode (Spark's default errorifexists, overwrite), partitionBy or insertInto (by position) is not."""
    for chain in ('.format("iceberg").mode("append")', '.mode("append")'):
        out = output_script(f'mapped.toDF().write{chain}.saveAsTable("glue_catalog.shop.orders")\n')
        report = convert_scripts("orders", INPUT, out)
        assert report.complete and report.entry["output"] == ICEBERG_OUTPUT, report.table()
    for chain, word in (
        ('.format("iceberg").saveAsTable', "errorifexists"),
        ('.mode("overwrite").saveAsTable', "overwrite"),
        ('.mode("append").partitionBy("day").saveAsTable', "partitionBy"),
        ('.mode("append").insertInto', "insertInto"),
    ):
        out = output_script(f'mapped.toDF().write{chain}("glue_catalog.shop.orders")\n')
        assert_write_refused(out, word, at="write.")
