"""from_catalog sources and sinks (issue 26 item 3): resolved with Glue's GetTable under --from-aws (moto's Glue
mock: create_database/create_table, then the importer), or given with --catalog-location, or reported with the
exact option to pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from glueflow_dagster.glue_import import CONVERTED, UNSUPPORTED, AwsFacts, AwsJob, convert_aws, convert_scripts
from glueflow_dagster_tests.glue_import.glue_scripts import GLUE_HEADER, items, line_of

JSON_SERDE = {"SerializationLibrary": "org.openx.data.jsonserde.JsonSerDe", "Parameters": {"paths": "id,amount"}}
PARQUET_SERDE = {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"}
ORC_SERDE = {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.orc.OrcSerde"}


def catalog_script(source: str, sink: str, mapping: str = '[("id", "long", "id", "long")]') -> str:
    return (
        GLUE_HEADER
        + 'args = getResolvedOptions(sys.argv, ["JOB_NAME"])\n'
        + "glueContext = GlueContext(SparkContext.getOrCreate())\n"
        + "job = Job(glueContext)\n"
        + 'job.init(args["JOB_NAME"], args)\n'
        + f"src = glueContext.create_dynamic_frame.from_catalog({source}, transformation_ctx='src')\n"
        + f"mapped = ApplyMapping.apply(frame=src, mappings={mapping})\n"
        + f"glueContext.write_dynamic_frame.from_catalog(frame=mapped, {sink})\n"
        + "job.commit()\n"
    )


INPUT = catalog_script('database="lake", table_name="raw_orders"', 'database="lake", table_name="staged_orders"')
OUTPUT = catalog_script('database="lake", table_name="staged_orders"', 'database="lake", table_name="orders"')


@pytest.fixture
def glue() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("glue", region_name="us-east-1")
        client.create_database(DatabaseInput={"Name": "lake"})
        yield client


def create_table(
    glue: Any,
    name: str,
    location: str,
    serde: dict[str, Any] = JSON_SERDE,
    partitions: tuple[str, ...] = (),
    parameters: dict[str, str] | None = None,
) -> None:
    glue.create_table(
        DatabaseName="lake",
        TableInput={
            "Name": name,
            "StorageDescriptor": {
                "Columns": [{"Name": "id", "Type": "bigint"}],
                "Location": location,
                "SerdeInfo": serde,
            },
            "PartitionKeys": [{"Name": key, "Type": "string"} for key in partitions],
            "Parameters": parameters or {},
        },
    )


def facts(glue: Any) -> AwsFacts:
    return AwsFacts(AwsJob("In", "s3://scripts/in.py"), AwsJob("Out", "s3://scripts/out.py"), glue=glue)


def test_from_aws_resolves_catalog_sources_and_sinks_with_get_table(glue: Any) -> None:
    create_table(glue, "raw_orders", "s3://lake/raw/orders/", partitions=("dt",), parameters={"classification": "json"})
    create_table(glue, "staged_orders", "s3://lake/staging/orders/", parameters={"compressionType": "gzip"})
    create_table(glue, "orders", "s3://lake/curated/orders/")
    report = convert_scripts("orders", INPUT, OUTPUT, aws=facts(glue))
    assert report.complete, report.table()
    assert report.entry["input"] == {"uri": "s3://lake/raw/orders/", "recurse": True}
    assert report.entry["staging"] == {"uri": "s3://lake/staging/orders/", "recurse": True, "compression": "gzip"}
    assert report.entry["output"] == {"uri": "s3://lake/curated/orders/", "compression": "none"}
    [location] = items(report, CONVERTED, "input.uri")
    assert "GetTable" in location.message and location.line == line_of(INPUT, "from_catalog")
    assert items(report, CONVERTED, "input (format)")


def test_a_mapped_partition_column_is_reported(glue: Any) -> None:
    create_table(glue, "raw_orders", "s3://lake/raw/orders/", partitions=("dt",))
    create_table(glue, "staged_orders", "s3://lake/staging/orders/")
    create_table(glue, "orders", "s3://lake/curated/orders/")
    mapping = '[("id", "long", "id", "long"),\n    ("dt", "string", "day", "string")]'
    script = catalog_script('database="lake", table_name="raw_orders"', 'database="lake", table_name="staged_orders"')
    script = script.replace('[("id", "long", "id", "long")]', mapping)
    report = convert_scripts("orders", script, OUTPUT, aws=facts(glue))
    [refused] = items(report, UNSUPPORTED, "input_job.mappings")
    assert "partition column" in refused.message and refused.line == line_of(script, '("dt"')


def test_tables_glueflow_cannot_read_or_write_are_reported(glue: Any) -> None:
    create_table(glue, "raw_orders", "s3://lake/raw/orders/", serde=ORC_SERDE)
    create_table(
        glue,
        "staged_orders",
        "s3://lake/staging/",
        serde={**JSON_SERDE, "Parameters": {"ignore.malformed.json": "true"}},
    )
    create_table(glue, "orders", "s3://lake/curated/orders/", partitions=("region",))
    report = convert_scripts("orders", INPUT, OUTPUT, aws=facts(glue))
    assert not report.complete
    fields = {(i.field, i.source) for i in report.of(UNSUPPORTED)}
    assert ("input (format)", "input.py") in fields  # orc
    assert ("staging (SerDe ignore.malformed.json)", "input.py") in fields
    assert ("output (partitions)", "output.py") in fields
    # A table GetTable does not find: one line with the AWS error code and the option that would do.
    missing = INPUT.replace("raw_orders", "nope")
    report = convert_scripts("orders", missing, OUTPUT, aws=facts(glue))
    [refused] = items(report, UNSUPPORTED, "input.uri")
    assert "EntityNotFoundException" in refused.message and "--catalog-location lake.nope=" in refused.message


def test_without_from_aws_the_report_names_the_option(glue: Any) -> None:
    report = convert_scripts("orders", INPUT, OUTPUT)
    messages = {i.message for i in report.of(UNSUPPORTED)}
    assert any("--catalog-location lake.raw_orders=s3://bucket/prefix" in m for m in messages)
    assert any("--catalog-location lake.orders=s3://bucket/prefix" in m for m in messages)
    given = {
        "lake.raw_orders": "s3://lake/raw/",
        "lake.staged_orders": "s3://lake/staging/",
        "lake.orders": "s3://lake/out/",
    }
    report = convert_scripts("orders", INPUT, OUTPUT, catalog_locations=given)
    assert report.complete, report.table()
    assert report.entry["output"]["uri"] == "s3://lake/out/"


def test_convert_aws_reads_jobs_scripts_and_tables_from_moto(glue: Any) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="scripts")
    s3.put_object(Bucket="scripts", Key="in.py", Body=INPUT.encode())
    s3.put_object(Bucket="scripts", Key="out.py", Body=OUTPUT.encode())
    for name, key in (("In", "in.py"), ("Out", "out.py")):
        glue.create_job(
            Name=name,
            Role="arn:aws:iam::123456789012:role/Glue",
            Command={"Name": "glueetl", "ScriptLocation": f"s3://scripts/{key}"},
            DefaultArguments={"--job-bookmark-option": "job-bookmark-enable"},
        )
    create_table(glue, "raw_orders", "s3://lake/raw/orders/")
    create_table(glue, "staged_orders", "s3://lake/staging/orders/")
    create_table(glue, "orders", "s3://lake/curated/orders/")
    report = convert_aws("orders", "In", "Out", glue=glue, s3=s3)
    assert report.complete, report.table()
    assert report.entry["output"]["uri"] == "s3://lake/curated/orders/"
    assert report.entry["output_job"]["bookmark"] == "enable"
