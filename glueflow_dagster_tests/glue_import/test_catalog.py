"""from_catalog sources and sinks (issue 26 item 3): resolved with Glue's GetTable under --from-aws (moto's Glue
mock: create_database/create_table, then the importer), or given with --catalog-location, or reported with the
exact option to pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from glueflow_dagster.core.config import load_config
from glueflow_dagster.glue_import import (
    CONVERTED,
    NEEDS_USER,
    UNSUPPORTED,
    AwsFacts,
    AwsJob,
    convert_aws,
    convert_scripts,
    write_flow_file,
)
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


OPEN_CSV_SERDE = {
    "SerializationLibrary": "org.apache.hadoop.hive.serde2.OpenCSVSerde",
    "Parameters": {"separatorChar": "|", "quoteChar": "'", "escapeChar": "\\"},
}
LAZY_SERDE = {
    "SerializationLibrary": "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe",
    "Parameters": {"field.delim": "\t", "serialization.format": "\t"},
}
TWO_COLUMNS = '[("id", "long", "id", "long"), ("region", "string", "region", "string")]'


def test_csv_and_parquet_tables_convert_with_their_serde_options(
    glue: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_table(glue, "raw_orders", "s3://lake/raw/orders/", serde=OPEN_CSV_SERDE,
                 parameters={"classification": "csv", "skip.header.line.count": "1"})  # fmt: skip
    header = {"skip.header.line.count": "1"}  # Glue's CSV writer writes a header line (writeHeader: true)
    create_table(glue, "staged_orders", "s3://lake/staging/orders/", serde=LAZY_SERDE, parameters=header)
    create_table(glue, "orders", "s3://lake/curated/orders/", serde=PARQUET_SERDE, partitions=("region",),
                 parameters={"parquet.compression": "ZSTD"})  # fmt: skip
    options = '{"partitionKeys": ["region"], "enableUpdateCatalog": True}'
    sink = f'database="lake", table_name="orders", additional_options={options}'
    inp = catalog_script(
        'database="lake", table_name="raw_orders"', 'database="lake", table_name="staged_orders"', TWO_COLUMNS
    )
    out = catalog_script('database="lake", table_name="staged_orders"', sink, TWO_COLUMNS)  # fmt: skip
    report = convert_scripts("orders", inp, out, aws=facts(glue))
    assert report.complete, report.table()
    assert report.entry["input"] == {
        "uri": "s3://lake/raw/orders/", "recurse": True, "format": "csv",
        "separator": "|", "quoteChar": "'", "escaper": "\\", "withHeader": True,
    }  # fmt: skip
    # staging: a tab-separated table with a header line, written and read the same way
    assert report.entry["staging"] == {
        "uri": "s3://lake/staging/orders/", "recurse": True, "format": "csv", "compression": "none",
        "separator": "\t", "withHeader": True,
    }  # fmt: skip
    assert report.entry["output"] == {
        "uri": "s3://lake/curated/orders/", "format": "parquet", "compression": "zstd", "partition_keys": ["region"],
    }  # fmt: skip
    [update] = items(report, NEEDS_USER, "output (enableUpdateCatalog)")
    assert update.line == line_of(out, "write_dynamic_frame")
    flow = load_config(write_flow_file(report, tmp_path / "glueflow.yaml")).flows["orders"]
    assert (flow.input.csv.separator, flow.input.csv.quote_char, flow.input.csv.with_header) == ("|", "'", True)
    assert flow.staging.csv.with_header and flow.staging.csv.write_header
    # Without the table's header line count, the Output job would read the header the Input job writes.
    glue.update_table(
        DatabaseName="lake",
        TableInput={
            "Name": "staged_orders",
            "StorageDescriptor": {"Location": "s3://lake/staging/orders/", "SerdeInfo": LAZY_SERDE},
        },
    )
    report = convert_scripts("orders", inp, out, aws=facts(glue))
    assert [(i.source, i.field) for i in report.of(UNSUPPORTED)] == [("output.py", "staging.withHeader")]
    assert flow.output.partition_keys == ("region",)


def test_partition_keys_other_than_the_tables_and_table_formats_are_reported(glue: Any) -> None:
    create_table(glue, "raw_orders", "s3://lake/raw/orders/")
    create_table(glue, "staged_orders", "s3://lake/staging/orders/", parameters={"table_type": "ICEBERG"})
    create_table(glue, "orders", "s3://lake/curated/orders/", serde=PARQUET_SERDE, partitions=("region",))
    sink = 'database="lake", table_name="orders", additional_options={"partitionKeys": ["id"]}'
    out = catalog_script('database="lake", table_name="staged_orders"', sink, TWO_COLUMNS)
    report = convert_scripts("orders", INPUT, out, aws=facts(glue))
    iceberg = items(report, UNSUPPORTED, "staging (format)")  # written by the Input job, read by the Output job
    assert [i.source for i in iceberg] == ["input.py", "output.py"]
    assert "glueflow's staging is files" in iceberg[0].message
    [keys] = items(report, UNSUPPORTED, "output (partitions)")
    assert keys.line == line_of(out, "write_dynamic_frame") and "not table lake.orders's partition keys" in keys.message


def test_an_iceberg_output_table_converts_to_format_iceberg_in_glues_catalog(glue: Any, tmp_path: Any) -> None:
    create_table(glue, "raw_orders", "s3://lake/raw/orders/")
    create_table(glue, "staged_orders", "s3://lake/staging/orders/")
    create_table(glue, "orders", "s3://lake/warehouse/lake.db/orders", parameters={"table_type": "ICEBERG"})
    report = convert_scripts("orders", INPUT, OUTPUT, aws=facts(glue))
    assert report.complete, report.table()
    assert report.entry["output"] == {
        "format": "iceberg",
        "table": "lake.orders",
        "catalog": {"type": "glue"},
        "uri": "s3://lake/warehouse/lake.db",
    }
    flow = load_config(write_flow_file(report, tmp_path / "glueflow.yaml")).flows["orders"]
    assert flow.output.format == "iceberg" and flow.output.table == "lake.orders"
    assert dict(flow.output.catalog) == {"type": "glue"}


def test_hudi_and_delta_output_tables_stay_refused(glue: Any) -> None:
    create_table(glue, "raw_orders", "s3://lake/raw/orders/")
    create_table(glue, "staged_orders", "s3://lake/staging/orders/")
    create_table(glue, "orders", "s3://lake/curated/orders/", parameters={"table_type": "HUDI"})
    report = convert_scripts("orders", INPUT, OUTPUT, aws=facts(glue))
    [refused] = items(report, UNSUPPORTED, "output (format)")
    assert "holds hudi" in refused.message
