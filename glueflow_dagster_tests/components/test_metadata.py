"""Dagster's standard metadata on every asset, the source observed, and the chart in F/flow_report."""

import base64
import io
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import (
    AssetKey,
    CodeReferencesMetadataValue,
    DagsterEventType,
    DagsterInstance,
    LocalFileCodeReference,
    MarkdownMetadataValue,
    TableColumnDep,
    TableColumnLineage,
    TableSchema,
)
from matplotlib import image as mpimg

from glueflow_dagster.components.assets import REPORT_CHART_KEY
from glueflow_dagster.components.jobs import INPUT_RUN_TAG, flow_report_key, output_key, raw_input_key, staging_key
from glueflow_dagster.components.monitoring import run_materialization_metadata
from glueflow_dagster.components.resources import StorageResource
from glueflow_dagster.definitions import load_definitions
from glueflow_dagster_tests.conftest import raw_records, write_flow_file

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _flow_file(tmp_path: Path, **options: Any) -> Path:
    path = write_flow_file(tmp_path, **options)
    document = yaml.safe_load(path.read_text())
    document["flows"]["events"]["owners"] = ["team:data", "ana@example.com"]
    document["flows"]["events"]["tags"] = {"domain": "sales", "tier": "gold"}
    document["flows"]["events"]["input_job"]["mappings"].append(["user.name", "string", "user.name", "string"])
    document["flows"]["events"]["output_job"]["mappings"].append(["user.name", "string", "user_name", "string"])
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def test_every_asset_declares_schema_lineage_owners_tags_code_references_and_kinds(tmp_path: Path) -> None:
    path = _flow_file(tmp_path)
    graph = load_definitions(path).resolve_asset_graph()
    keys = [raw_input_key("events"), staging_key("events"), output_key("events"), flow_report_key("events")]
    for key in keys:
        node = graph.get(key)
        assert set(node.owners) == {"team:data", "ana@example.com"}
        assert {k: v for k, v in node.tags.items() if not k.startswith("dagster/")} == {
            "domain": "sales",
            "tier": "gold",
        }
        [reference] = node.metadata["dagster/code_references"].code_references
        assert isinstance(node.metadata["dagster/code_references"], CodeReferencesMetadataValue)
        assert isinstance(reference, LocalFileCodeReference)
        assert reference.file_path == str(path.resolve())
        assert path.read_text().splitlines()[reference.line_number - 1].strip() == "events:"
        assert len(node.kinds) <= 10
    for key in keys[:3]:
        node = graph.get(key)
        assert node.kinds == {"file", "json", "polars"}
        assert node.metadata["dagster/uri"].startswith("file:///")
        assert "uri" in node.metadata  # the existing key stays
    assert graph.get(keys[3]).kinds == {"file", "png", "matplotlib"}

    staging_schema = graph.get(staging_key("events")).metadata["dagster/column_schema"]
    assert isinstance(staging_schema, TableSchema)
    assert {c.name: c.type for c in staging_schema.columns} == {
        "event_id": "long",
        "user_id": "long",
        "amount": "double",
        "user": "struct<name:string>",
        "user.name": "string",
    }
    output_schema = graph.get(output_key("events")).metadata["dagster/column_schema"]
    assert [c.name for c in output_schema.columns] == ["event_id", "user_id", "amount", "user_name"]
    raw_schema = graph.get(raw_input_key("events")).metadata["dagster/column_schema"]
    assert {c.name for c in raw_schema.columns} >= {"id", "user", "user.id", "user.name", "amount"}

    output_lineage = graph.get(output_key("events")).metadata["dagster/column_lineage"]
    staging_lineage = graph.get(staging_key("events")).metadata["dagster/column_lineage"]
    assert isinstance(output_lineage, TableColumnLineage)
    assert output_lineage.deps_by_column["user_name"] == [TableColumnDep(staging_key("events"), "user.name")]
    assert staging_lineage.deps_by_column["user.name"] == [TableColumnDep(raw_input_key("events"), "user.name")]
    assert staging_lineage.deps_by_column["user_id"] == [TableColumnDep(raw_input_key("events"), "user.id")]
    # The open-source UI does not draw dagster/column_lineage; the Columns table shows it in the descriptions.
    descriptions = {c.name: c.description for c in output_schema.columns}
    assert descriptions["user_name"].endswith("; column lineage: events/staging.user.name")
    assert {c.name: c.description for c in staging_schema.columns}["user_id"].endswith(
        "; column lineage: events/raw_input.user.id"
    )
    assert all("column lineage" not in c.description for c in raw_schema.columns)  # the source has no upstream


def test_s3_locations_get_the_s3_kind_and_their_s3_uri(tmp_path: Path) -> None:
    path = write_flow_file(tmp_path, output_uri="s3://bucket/out")
    graph = load_definitions(path).resolve_asset_graph()
    assert graph.get(output_key("events")).kinds == {"s3", "json", "polars"}
    assert graph.get(output_key("events")).metadata["dagster/uri"] == "s3://bucket/out"
    assert "s3" in graph.get(flow_report_key("events")).kinds


def _observations(instance: DagsterInstance, key: AssetKey) -> list[dict[str, Any]]:
    records = instance.fetch_observations(key, limit=100).records
    return [{k: v.value for k, v in r.asset_observation.metadata.items()} for r in reversed(records)]


def test_runs_record_row_count_and_uri_and_each_input_run_observes_the_source(
    flow_file: Path, instance: DagsterInstance
) -> None:
    defs = load_definitions(flow_file)
    raw = StorageResource().open(str(flow_file.parent / "data" / "input"))
    raw.write_bytes("batch=0/a.json", raw_records(0, 30))
    raw.write_bytes("batch=0/b.json", raw_records(30, 20))
    first = defs.resolve_job_def("events_input_job").execute_in_process(instance=instance)
    staging = run_materialization_metadata(instance, first.run_id, staging_key("events"))
    assert staging["dagster/row_count"] == staging["records_written"] == 50
    assert staging["dagster/uri"] == (flow_file.parent / "data" / "staging").resolve().as_uri()
    output_run = defs.resolve_job_def("events_output_job").execute_in_process(
        instance=instance, tags={INPUT_RUN_TAG: first.run_id}
    )
    output = run_materialization_metadata(instance, output_run.run_id, output_key("events"))
    assert output["dagster/row_count"] == output["records_written"] == 50
    assert output["dagster/uri"] == (flow_file.parent / "data" / "output").resolve().as_uri()

    raw.write_bytes("batch=1/c.json", raw_records(50, 5))
    defs.resolve_job_def("events_input_job").execute_in_process(instance=instance)
    defs.resolve_job_def("events_input_job").execute_in_process(instance=instance)  # nothing new
    sizes = {o.key: o.size for o in raw.list() if o.key.endswith(".json")}
    observed = _observations(instance, raw_input_key("events"))
    assert [o["objects_listed"] for o in observed] == [2, 3, 3]
    assert [o["new_objects"] for o in observed] == [2, 1, 0]
    assert [o["bytes_listed"] for o in observed] == [
        sizes["batch=0/a.json"] + sizes["batch=0/b.json"],
        sum(sizes.values()),
        sum(sizes.values()),
    ]
    assert [o["new_bytes"] for o in observed] == [
        sizes["batch=0/a.json"] + sizes["batch=0/b.json"],
        sizes["batch=1/c.json"],
        0,
    ]
    assert observed[0]["oldest_unread_age_s"] >= 0 and observed[2]["oldest_unread_age_s"] == 0
    assert all(o["dagster/uri"].startswith("file:///") for o in observed)
    # The observations are what the UI plots on F/raw_input: one per Input run.
    assert len(instance.get_records_for_run(first.run_id, of_type=DagsterEventType.ASSET_OBSERVATION).records) == 1


def _chart_png(markdown: str) -> bytes:
    match = re.fullmatch(r"!\[chart\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", markdown)
    assert match, markdown[:80]
    return base64.b64decode(match.group(1))


def test_flow_report_embeds_the_chart_and_writes_it_to_the_output_location(
    flow_file: Path, instance: DagsterInstance
) -> None:
    defs = load_definitions(flow_file)
    raw = StorageResource().open(str(flow_file.parent / "data" / "input"))
    for cycle in range(3):
        raw.write_bytes(f"batch={cycle}/a.json", raw_records(cycle * 100, 40))
        input_run = defs.resolve_job_def("events_input_job").execute_in_process(instance=instance)
        output_run = defs.resolve_job_def("events_output_job").execute_in_process(
            instance=instance, tags={INPUT_RUN_TAG: input_run.run_id}
        )
    report = instance.fetch_materializations(flow_report_key("events"), limit=1).records[0]
    metadata = report.asset_materialization.metadata
    assert isinstance(metadata["chart"], MarkdownMetadataValue)
    png = _chart_png(metadata["chart"].value)
    assert png[:8] == PNG_SIGNATURE and len(png) == metadata["chart_bytes"].value < 300_000
    image = mpimg.imread(io.BytesIO(png))
    assert image.shape[:2] == (560, 880)  # 11 x 7 inches at 80 dpi
    stored = flow_file.parent / "data" / "output" / REPORT_CHART_KEY
    assert stored.read_bytes() == png
    assert metadata["dagster/uri"].value == stored.resolve().as_uri()
    for key in ("png_path", "windows", "window_count", "total_bytes_written", "total_bytes_read"):
        assert key in metadata
    assert metadata["window_count"].value == 3
    # The output location's _glueflow/ is never counted as data or as an orphan.
    output = run_materialization_metadata(instance, output_run.run_id, output_key("events"))
    assert output["orphaned_files"] == 0


def test_flow_report_on_s3_writes_the_chart_to_the_bucket(
    tmp_path: Path,
    instance: DagsterInstance,
    moto_server: str,
    s3_client: Any,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    flow_file = write_flow_file(
        tmp_path,
        input_uri=f"s3://{s3_bucket}/raw",
        staging_uri=f"s3://{s3_bucket}/staging",
        output_uri=f"s3://{s3_bucket}/output",
    )
    defs = load_definitions(flow_file)
    s3_client.put_object(Bucket=s3_bucket, Key="raw/batch=0/a.json", Body=raw_records(0, 20))
    input_run = defs.resolve_job_def("events_input_job").execute_in_process(instance=instance)
    output_run = defs.resolve_job_def("events_output_job").execute_in_process(
        instance=instance, tags={INPUT_RUN_TAG: input_run.run_id}
    )
    report = run_materialization_metadata(instance, output_run.run_id, flow_report_key("events"))
    assert report["dagster/uri"] == f"s3://{s3_bucket}/output/{REPORT_CHART_KEY}"
    body = s3_client.get_object(Bucket=s3_bucket, Key=f"output/{REPORT_CHART_KEY}")["Body"].read()
    assert body == _chart_png(report["chart"])
    observed = _observations(instance, raw_input_key("events"))
    assert observed[0]["dagster/uri"] == f"s3://{s3_bucket}/raw" and observed[0]["new_objects"] == 1
    output = run_materialization_metadata(instance, output_run.run_id, output_key("events"))
    assert output["dagster/uri"] == f"s3://{s3_bucket}/output" and output["dagster/row_count"] == 20
