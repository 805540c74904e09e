"""The review pass of issue 26 ("never exit 0 on a flow that would read, write or map differently"): corpus
scripts with one construct changed each. Every wrong conversion or needless refusal found is pinned here.

Found: a glob in a read path (Glue expands it; glueflow would read a prefix named `2024-*`, i.e. nothing) and an
`s3a://` path (written as a local folder) converted with exit 0; `"recurse": "true"` and `coalesce(1)` /
`repartition(n)` (the same records) were refused; `SparkSession.builder.config(...)` settings were dropped
(see test_iceberg_writes); a from_catalog Iceberg sink's `additional_options` were dropped.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from glueflow_dagster.glue_import import DEFAULT, UNSUPPORTED, convert_scripts
from glueflow_dagster_tests.glue_import.glue_scripts import items, line_of

CORPUS = Path(__file__).parent / "corpus"


def pair(case: str) -> tuple[str, str]:
    folder = CORPUS / case
    return (folder / "input.py.txt").read_text(encoding="utf-8"), (folder / "output.py.txt").read_text(encoding="utf-8")


def changed(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize("glob", ["2024-*/", "[ab]/", "{eu,us}/", "day=0?/"])
def test_a_glob_in_a_read_path_is_refused_at_its_line(glob: str) -> None:
    inp, out = pair("11_partitioned_sink")
    inp = changed(inp, '"s3://fleet-raw/trips/"', f'"s3://fleet-raw/trips/{glob}"')
    report = convert_scripts("trips", inp, out)
    [refused] = items(report, UNSUPPORTED, "input.uri")
    assert "glob" in refused.message and refused.line == line_of(inp, "create_dynamic_frame")
    assert "uri" not in report.entry["input"]


def test_a_job_argument_in_a_path_is_no_glob() -> None:
    inp, out = pair("13_field_transforms")  # paths built from args["bucket"]: ${bucket}
    assert convert_scripts("crm", inp, out).complete


@pytest.mark.parametrize("scheme", ["s3a://", "s3n://", "S3://"])
def test_hadoop_s3_schemes_are_the_same_bucket_and_key(scheme: str) -> None:
    inp, out = pair("11_partitioned_sink")
    out = changed(out, '"s3://fleet-curated/trips/"', f'"{scheme}fleet-curated/trips/"')
    inp = changed(inp, '"s3://fleet-staging/trips/"', f'"{scheme}fleet-staging/trips/"')  # staging still chains
    report = convert_scripts("trips", inp, out)
    assert report.complete, report.table()
    assert report.entry["output"]["uri"] == "s3://fleet-curated/trips/"
    assert report.entry["staging"]["uri"] == "s3://fleet-staging/trips/"
    assert [i.value for i in items(report, DEFAULT, "output.uri")] == [f"{scheme}fleet-curated/trips/"]


def test_recurse_as_glues_string_option_converts() -> None:
    inp, out = pair("12_bookmarked")
    out = changed(out, '"recurse": True,', '"recurse": "true",')
    report = convert_scripts("readings", inp, out)
    assert report.complete and report.entry["staging"]["recurse"] is True, report.table()
    out = changed(out, '"recurse": "true",', '"recurse": "yes",')
    assert not convert_scripts("readings", inp, out).complete


@pytest.mark.parametrize("call", ["coalesce(1)", "repartition(4)"])
def test_coalesce_and_repartition_write_the_same_records(call: str) -> None:
    inp, out = pair("13_field_transforms")
    out = changed(out, 'flat = mapped.drop_fields(["name"])', f'flat = mapped.drop_fields(["name"]).{call}')
    report = convert_scripts("crm", inp, out)
    assert report.complete, report.table()
    assert report.entry == convert_scripts("crm", *pair("13_field_transforms")).entry
    [note] = [i for i in items(report, DEFAULT, "step") if call.split("(")[0] in i.message]
    assert note.line == line_of(out, call)


def test_repartition_of_the_dataframe_before_an_iceberg_write_converts() -> None:
    from glueflow_dagster_tests.glue_import.test_iceberg_writes import INPUT, output_script

    out = output_script('mapped.toDF().repartition(1).writeTo("glue_catalog.shop.orders").append()\n')
    report = convert_scripts("orders", INPUT, out)
    assert report.complete and report.entry["output"]["format"] == "iceberg", report.table()


def test_an_iceberg_catalog_sinks_additional_options_are_reported(tmp_path: Path) -> None:
    import boto3
    from moto import mock_aws

    from glueflow_dagster.glue_import import AwsFacts, AwsJob
    from glueflow_dagster_tests.glue_import.test_catalog import INPUT, catalog_script, create_table

    with mock_aws():
        glue = boto3.client("glue", region_name="us-east-1")
        glue.create_database(DatabaseInput={"Name": "lake"})
        create_table(glue, "raw_orders", "s3://lake/raw/orders/")
        create_table(glue, "staged_orders", "s3://lake/staging/orders/")
        create_table(glue, "orders", "s3://lake/warehouse/lake.db/orders", parameters={"table_type": "ICEBERG"})
        sink = 'database="lake", table_name="orders", additional_options={"write.parquet.compression-codec": "zstd"}'
        out = catalog_script('database="lake", table_name="staged_orders"', sink)
        facts = AwsFacts(AwsJob("In", "s3://s/in.py"), AwsJob("Out", "s3://s/out.py"), glue=glue)
        report = convert_scripts("orders", INPUT, out, aws=facts)
    [option] = items(report, UNSUPPORTED, "output (write.parquet.compression-codec)")
    assert option.line == line_of(out, "write_dynamic_frame")


def test_glues_default_thresholds_are_reported_beside_glueflows_max_error_records() -> None:
    """Glue's totalThreshold 0 never fails a job on error records; glueflow's max_error_records 0 fails the run on
    the first: the report says so at the ApplyMapping line (a given totalThreshold converts, as before)."""
    inp, out = pair("10_parquet_sink")
    report = convert_scripts("customers", inp, out)
    notes = [i for i in items(report, DEFAULT) if i.field.endswith("max_error_records")]
    assert [(i.field, i.line) for i in notes] == [
        ("input_job.max_error_records", line_of(inp, "ApplyMapping.apply")),
        ("output_job.max_error_records", line_of(out, "ApplyMapping.apply")),
    ]
    assert "never fails the job on error records" in notes[0].message
    inp, out = pair("12_bookmarked")  # totalThreshold=100 in the Input script
    report = convert_scripts("readings", inp, out)
    assert report.entry["input_job"]["max_error_records"] == 100
    assert [i.field for i in items(report, DEFAULT) if i.field.endswith("max_error_records")] == [
        "output_job.max_error_records"
    ]


def test_the_glue_job_name_in_a_path_is_refused() -> None:
    """args['JOB_NAME'] is set by Glue to each job's own name; it converted to ${JOB_NAME}, one variable both jobs
    would read from Dagster's environment (unset there), with exit 0."""
    inp, out = pair("12_bookmarked")
    out = changed(out, '"s3://iot-curated/readings/"', '"s3://iot-curated/" + args["JOB_NAME"] + "/"')
    report = convert_scripts("readings", inp, out)
    assert not report.complete
    [refused] = items(report, UNSUPPORTED, "step")
    assert "JOB_NAME" in refused.message and refused.line == line_of(out, 'args["JOB_NAME"] + "/"')


def test_catalog_locations_match_table_names_case_insensitively() -> None:
    """The Data Catalog keeps names in lower case and finds them in any case; a script spelling the table
    `Telemetry.Staged_Pings` was refused although --catalog-location gave telemetry.staged_pings."""
    import yaml

    inp, out = pair("07_catalog_locations")
    expected = yaml.safe_load((CORPUS / "07_catalog_locations" / "expected.yaml").read_text(encoding="utf-8"))
    out = changed(
        out,
        'database = "telemetry", table_name = "staged_pings"',
        'database = "Telemetry", table_name = "Staged_Pings"',
    )
    report = convert_scripts("pings", inp, out, catalog_locations=expected["catalog_locations"])
    assert report.complete and report.entry["staging"]["uri"] == "s3://telemetry/staging/pings/", report.table()


@pytest.mark.parametrize("name", ["export.tsv", "feed.psv", "dump.dat", "app.log", "orders.XML", "batch.zip"])
def test_a_path_naming_one_object_of_other_common_suffixes_is_refused(name: str) -> None:
    """Glue reads the one object; glueflow would read a folder of that name (nothing): .tsv and the like
    converted with exit 0."""
    inp, out = pair("11_partitioned_sink")
    inp = changed(inp, '"s3://fleet-raw/trips/"', f'"s3://fleet-raw/trips/{name}"')
    report = convert_scripts("trips", inp, out)
    [refused] = items(report, UNSUPPORTED, "input.uri")
    assert "names one object" in refused.message
