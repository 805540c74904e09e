"""End to end through the real definitions: Input and Output runs whose output is an Iceberg table.

The table is in the default catalog (SQLite beside the flow file); its warehouse is a local folder or a
bucket of the moto server over HTTP. It is read back through pyiceberg and polars.scan_iceberg.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from glueflow_dagster.components.jobs import INPUT_RUN_TAG, output_key
from glueflow_dagster.components.monitoring import run_materialization_metadata
from glueflow_dagster.components.resources import StorageResource
from glueflow_dagster.core.iceberg_table import BOOKMARK_VERSION_PROPERTY, RUN_ID_PROPERTY, IcebergTarget, open_catalog
from glueflow_dagster.definitions import load_definitions
from glueflow_dagster_tests.components.test_assets import run_job
from glueflow_dagster_tests.conftest import write_flow_file

MAPPINGS = {
    "input": [
        ["id", "long", "event_id", "long"],
        ["user.id", "int", "user_id", "long"],
        ["at", "string", "ts", "string"],
    ],
    "output": [
        ["event_id", "long", "event_id", "long"],
        ["user_id", "long", "user_id", "long"],
        ["ts", "string", "ts", "timestamp"],
    ],
}
START = datetime(2026, 12, 1, tzinfo=UTC)


def records(first: int, count: int) -> bytes:
    """Raw input lines, one event every 5 hours (several days: several partitions of day(ts))."""
    return "".join(
        json.dumps(
            {"id": i, "user": {"id": i % 5}, "at": (START + timedelta(hours=5 * i)).strftime("%Y-%m-%d %H:%M:%S")}
        )
        + "\n"
        for i in range(first, first + count)
    ).encode()


def iceberg_flow_file(
    tmp_path: Path, input_uri: str, staging_uri: str, warehouse: str, catalog: dict[str, str] | None = None
) -> Path:
    path = write_flow_file(tmp_path, input_uri=input_uri, staging_uri=staging_uri, bookmark="enable")
    document = yaml.safe_load(path.read_text())
    body = document["flows"]["events"]
    body["input_job"]["mappings"], body["output_job"]["mappings"] = MAPPINGS["input"], MAPPINGS["output"]
    body["output"] = {"uri": warehouse, "format": "iceberg", "table": "analytics.events", "partition_keys": ["day(ts)"]}
    if catalog is not None:
        body["output"]["catalog"] = catalog
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.fixture
def s3_completes_multipart_uploads_as_s3_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto 5.2 answers CompleteMultipartUpload with the root element `CompleteMultipartUploadResponse`; S3
    answers `CompleteMultipartUploadResult`, and Arrow's S3 client (pyiceberg's FileIO, which writes the
    table's metadata files by multipart upload) takes any other answer for an error embedded in a 200 OK.
    The moto server runs in this process: its answer is renamed as S3 names it, for this test only."""
    from moto.s3.responses import S3Response

    serialized = S3Response.serialized

    def as_s3(self: Any, action_result: Any) -> Any:
        status, headers, body = serialized(self, action_result)
        if self.data.get("Action") == "CompleteMultipartUpload" and isinstance(body, str | bytes):
            old, new = "CompleteMultipartUploadResponse", "CompleteMultipartUploadResult"
            body = body.replace(old, new) if isinstance(body, str) else body.replace(old.encode(), new.encode())
            headers.pop("Content-Length", None)
        return status, headers, body

    monkeypatch.setattr(S3Response, "serialized", as_s3)


def drop_glue_database() -> None:
    import boto3

    glue = boto3.client("glue")
    for table in glue.get_tables(DatabaseName="analytics")["TableList"]:
        glue.delete_table(DatabaseName="analytics", Name=table["Name"])
    glue.delete_database(Name="analytics")


def the_table(flow_file: Path, warehouse: str, extra: dict[str, str] | None = None) -> Any:
    catalog = {"type": "sql", "uri": f"sqlite:///{flow_file.parent / '.glueflow' / 'catalog.db'}"}
    catalog = {**catalog, **(extra or {})}
    target = IcebergTarget("analytics.events", warehouse, catalog)
    return open_catalog(target).load_table(target.identifier)


def output_run_dying_after_its_snapshot(defs: Any, instance: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the Output job with its worker lost after its Iceberg snapshot, before its materialization; its
    run id. (pyiceberg is imported only by the tests that use it.)"""
    from glueflow_dagster.core.iceberg_commit import IcebergOutput

    committed = IcebergOutput.commit

    def dies_after_the_snapshot(self: IcebergOutput, *args: Any, **kwargs: Any) -> Any:
        committed(self, *args, **kwargs)
        raise RuntimeError("worker lost after the Iceberg commit")

    monkeypatch.setattr(IcebergOutput, "commit", dies_after_the_snapshot)
    died = defs.resolve_job_def("events_output_job").execute_in_process(instance=instance, raise_on_error=False)
    assert not died.success
    monkeypatch.setattr(IcebergOutput, "commit", committed)
    return died.run_id



@pytest.mark.parametrize("store", ["local", "s3", "s3+glue"])
def test_input_then_output_writes_one_snapshot_per_bookmark_version_read_through_the_table(
    store: str, tmp_path: Path, instance: Any, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLARS_ICEBERG_PLANNER", "pyiceberg")  # polars_iceberg is not a dependency
    extra: dict[str, str] = {}
    catalog = {"type": "glue"} if store == "s3+glue" else None  # the Glue Data Catalog of the moto server
    if store.startswith("s3"):
        moto_server = request.getfixturevalue("moto_server")
        request.getfixturevalue("s3_completes_multipart_uploads_as_s3_does")
        bucket = request.getfixturevalue("s3_bucket")
        monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
        input_uri, staging_uri, warehouse = (f"s3://{bucket}/{name}" for name in ("raw", "staging", "warehouse"))
        extra = {"s3.endpoint": moto_server, "s3.region": "us-east-1", **(catalog or {})}
        if catalog is not None:  # the moto server lives for the session: leave its Glue Data Catalog empty
            request.addfinalizer(drop_glue_database)
    else:
        input_uri, staging_uri, warehouse = "data/input", "data/staging", (tmp_path / "warehouse").as_uri()
    flow_file = iceberg_flow_file(tmp_path, input_uri, staging_uri, warehouse, catalog)
    defs = load_definitions(flow_file)
    raw = StorageResource().open(input_uri if store != "local" else str(tmp_path / input_uri))
    raw.write_bytes("a.json", records(0, 40))

    input_run = run_job(defs, instance, "events_input_job")
    output_run = run_job(defs, instance, "events_output_job", tags={INPUT_RUN_TAG: input_run})

    table = the_table(flow_file, warehouse, extra)
    metadata = run_materialization_metadata(instance, output_run, output_key("events"))
    snapshot = table.current_snapshot()
    assert metadata["iceberg_snapshot_id"] == str(snapshot.snapshot_id)
    assert (metadata["dagster/table_name"], metadata["dagster/uri"]) == ("analytics.events", table.location())
    assert metadata["dagster/row_count"] == metadata["records_written"] == 40
    assert snapshot.summary[RUN_ID_PROPERTY] == output_run
    assert table.location() == f"{warehouse}/analytics.events"
    files = table.inspect.files().column("file_path").to_pylist()
    assert all(f.startswith(f"{warehouse}/analytics.events/data/run-{output_run}-attempt-1-part-r-") for f in files)
    assert len(files) == len({(START + timedelta(hours=5 * i)).date() for i in range(40)})  # one per day
    assert sorted(table.scan().to_arrow().column("event_id").to_pylist()) == list(range(40))
    frame = pl.scan_iceberg(table).filter(pl.col("event_id") == 7).collect()
    assert frame["ts"].to_list() == [START + timedelta(hours=35)]

    again = run_job(defs, instance, "events_output_job")  # Materialize again: nothing unread, no snapshot
    assert run_materialization_metadata(instance, again, output_key("events"))["dagster/row_count"] == 0
    raw.write_bytes("b.json", records(40, 10))
    run_job(defs, instance, "events_input_job")
    run_job(defs, instance, "events_output_job")
    table = the_table(flow_file, warehouse, extra)
    versions = [s.summary[BOOKMARK_VERSION_PROPERTY] for s in table.snapshots()]
    assert versions == ["bookmark_ctx/v0", "bookmark_ctx/v1"]
    assert sorted(table.scan().to_arrow().column("event_id").to_pylist()) == list(range(50))
    if catalog is not None:  # the table as Athena finds it: in the Glue Data Catalog, pointing at its metadata
        import boto3

        parameters = boto3.client("glue").get_table(DatabaseName="analytics", Name="events")["Table"]["Parameters"]
        assert (parameters["table_type"], parameters["metadata_location"]) == ("ICEBERG", table.metadata_location)


def test_a_run_that_dies_between_its_snapshot_and_its_materialization_is_adopted_by_the_next(
    tmp_path: Path, instance: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first Output run appends its snapshot and fails before Dagster records its materialization (the
    glueflow commit). The next run finds its bookmark version in the snapshot's summary: it appends nothing,
    commits the dead run's bookmark (its own plan held more objects, arrived meanwhile: a later run reads
    them), and records the adopted snapshot's id."""
    warehouse = (tmp_path / "warehouse").as_uri()
    flow_file = iceberg_flow_file(tmp_path, "data/input", "data/staging", warehouse)
    defs = load_definitions(flow_file)
    raw = StorageResource().open(str(tmp_path / "data" / "input"))
    raw.write_bytes("a.json", records(0, 30))
    run_job(defs, instance, "events_input_job")
    died_run_id = output_run_dying_after_its_snapshot(defs, instance, monkeypatch)
    [dead_snapshot] = the_table(flow_file, warehouse).snapshots()
    raw.write_bytes("b.json", records(30, 12))
    run_job(defs, instance, "events_input_job")

    adopter = run_job(defs, instance, "events_output_job")

    metadata = run_materialization_metadata(instance, adopter, output_key("events"))
    assert metadata["iceberg_snapshot_id"] == str(dead_snapshot.snapshot_id)
    assert metadata["iceberg_adopted_run_id"] == died_run_id
    assert metadata["bookmark_version"] == 1
    assert len(the_table(flow_file, warehouse).snapshots()) == 1
    run_job(defs, instance, "events_output_job")  # reads what arrived after the dead run's plan
    table = the_table(flow_file, warehouse)
    assert [s.summary[RUN_ID_PROPERTY] for s in table.snapshots()][0] == died_run_id
    assert sorted(table.scan().to_arrow().column("event_id").to_pylist()) == list(range(42))


def test_duckdb_s_iceberg_reader_reads_the_partitioned_table_as_pyiceberg_does(
    tmp_path: Path, instance: Any
) -> None:
    """DuckDB's `iceberg_scan` of the table's current metadata file (DuckDB 1.5.5 in a child process:
    support/duckdb_iceberg.py): a `day(ts)` spec, `timestamptz`, two snapshots; the same rows as pyiceberg."""
    from glueflow_dagster_tests.support.duckdb_iceberg import iceberg_scan, require

    require()
    warehouse = (tmp_path / "warehouse").as_uri()
    flow_file = iceberg_flow_file(tmp_path, "data/input", "data/staging", warehouse)
    defs = load_definitions(flow_file)
    raw = StorageResource().open(str(tmp_path / "data" / "input"))
    for first, count in ((0, 30), (30, 12)):
        raw.write_bytes(f"{first}.json", records(first, count))
        run_job(defs, instance, "events_input_job")
        run_job(defs, instance, "events_output_job")
    table = the_table(flow_file, warehouse)
    assert len(table.snapshots()) == 2
    expected = sorted(
        (row["event_id"], row["user_id"], row["ts"].isoformat(sep=" "))
        for row in table.scan().to_arrow().to_pylist()
    )

    rows = iceberg_scan(table.metadata_location, "event_id, user_id, timezone('UTC', ts)::VARCHAR || '+00:00'")

    assert sorted(rows) == expected and len(rows) == 42
    assert expected[7] == (7, 2, "2026-12-02 11:00:00+00:00")
