"""End to end through the real definitions: Input and Output runs against a real Dagster instance."""

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import DagsterInstance, Definitions, IntMetadataValue

from glueflow_dagster.components.jobs import INPUT_RUN_TAG, output_key, staging_key
from glueflow_dagster.components.monitoring import run_materialization_metadata
from glueflow_dagster.components.resources import StorageResource
from glueflow_dagster.definitions import load_definitions
from glueflow_dagster_tests.conftest import raw_records, write_flow_file

FIGURES = [
    "bytes_read",
    "bytes_written",
    "records_read",
    "records_written",
    "files_read",
    "files_written",
    "error_records",
    "duration_s",
]


def run_job(defs: Definitions, instance: DagsterInstance, name: str, tags: dict[str, str] | None = None) -> str:
    result = defs.resolve_job_def(name).execute_in_process(instance=instance, tags=tags)
    assert result.success
    return result.run_id


def raw_metadata(instance: DagsterInstance, run_id: str, key) -> dict[str, Any]:
    from dagster import DagsterEventType

    [record] = [
        r
        for r in instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION).records
        if r.event_log_entry.asset_materialization.asset_key == key
    ]
    return dict(record.event_log_entry.asset_materialization.metadata)


def test_input_then_output_records_plottable_figures_and_the_ratio(flow_file: Path, instance) -> None:
    defs = load_definitions(flow_file)
    raw = StorageResource().open(str(flow_file.parent / "data" / "input"))
    raw.write_bytes("batch=0/a.json", raw_records(0, 50))
    raw.write_bytes("batch=0/b.json.gz", gzip.compress(raw_records(50, 50)))
    raw.write_bytes("batch=0/ignored.tmp", b"not json at all")

    input_run = run_job(defs, instance, "events_input_job")
    staging = raw_metadata(instance, input_run, staging_key("events"))
    for name in FIGURES:
        assert name in staging, name
    assert isinstance(staging["bytes_written"], IntMetadataValue)
    assert staging["records_read"].value == staging["records_written"].value == 100
    assert staging["files_read"].value == 2  # the .tmp object is excluded
    staging_location = StorageResource().open(str(flow_file.parent / "data" / "staging"))
    staged = [o for o in staging_location.list() if not o.key.startswith("_glueflow/")]
    assert [o.key for o in staged] == [f"run-{input_run}-attempt-1-part-r-00000.json.gz"]
    assert staging["bytes_written"].value == staged[0].size

    output_run = run_job(defs, instance, "events_output_job", tags={INPUT_RUN_TAG: input_run})
    output = raw_metadata(instance, output_run, output_key("events"))
    assert output["bytes_read"].value == staged[0].size
    assert output["flow_ratio"].value == pytest.approx(1.0)
    assert output["records_written"].value == 100
    assert output["input_run_id"].value == input_run
    out_rows = [
        json.loads(line)
        for o in StorageResource().open(str(flow_file.parent / "data" / "output")).list()
        if not o.key.startswith("_glueflow/")
        for line in (flow_file.parent / "data" / "output" / o.key).read_text().splitlines()
    ]
    assert sorted(r["event_id"] for r in out_rows) == list(range(100))
    assert {r["amount"] for r in out_rows if r["event_id"] == 3} == {3.25}


def test_input_job_reads_only_new_raw_objects_and_output_rereads_staging_without_bookmarks(
    flow_file: Path, instance
) -> None:
    defs = load_definitions(flow_file)
    raw = StorageResource().open(str(flow_file.parent / "data" / "input"))
    ratios, reads = [], []
    for cycle in range(3):
        raw.write_bytes(f"batch={cycle}/a.json", raw_records(cycle * 100, 100))
        input_run = run_job(defs, instance, "events_input_job")
        staging = run_materialization_metadata(instance, input_run, staging_key("events"))
        assert (staging["files_read"], staging["records_read"]) == (1, 100)
        output_run = run_job(defs, instance, "events_output_job", tags={INPUT_RUN_TAG: input_run})
        output = run_materialization_metadata(instance, output_run, output_key("events"))
        ratios.append(output["flow_ratio"])
        reads.append(output["files_read"])
    # bookmark: disable (Glue's default): each Output run rereads all of staging, the guide's growing ratio.
    assert reads == [1, 2, 3]
    assert ratios[0] == pytest.approx(1.0) and ratios[1] > 1.8 and ratios[2] > 2.7

    nothing_new = run_job(defs, instance, "events_input_job")
    staging = run_materialization_metadata(instance, nothing_new, staging_key("events"))
    assert (staging["files_read"], staging["files_written"], staging["bytes_written"]) == (0, 0, 0)


def test_failed_input_run_does_not_advance_its_bookmark(flow_file: Path, instance) -> None:
    defs = load_definitions(flow_file)
    raw = StorageResource().open(str(flow_file.parent / "data" / "input"))
    raw.write_bytes("batch=0/a.json", raw_records(0, 10))
    run_job(defs, instance, "events_input_job")
    raw.write_bytes("batch=1/a.json", raw_records(10, 10))
    staging_dir = flow_file.parent / "data" / "staging"
    moved = staging_dir.rename(staging_dir.with_name("staging.bak"))
    staging_dir.write_text("a file where the staging folder should be")  # so the write fails
    failed = defs.resolve_job_def("events_input_job").execute_in_process(instance=instance, raise_on_error=False)
    assert not failed.success
    staging_dir.unlink()
    moved.rename(staging_dir)
    retry = run_job(defs, instance, "events_input_job")
    # The failed run committed nothing, so the retry reads batch 1 (and only batch 1).
    assert run_materialization_metadata(instance, retry, staging_key("events"))["records_read"] == 10


def test_s3_flow_over_the_moto_server_via_aws_endpoint_url(
    tmp_path: Path,
    instance,
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
    s3_client.put_object(Bucket=s3_bucket, Key="raw/batch=0/a.json", Body=raw_records(0, 40))
    input_run = run_job(defs, instance, "events_input_job")
    output_run = run_job(defs, instance, "events_output_job", tags={INPUT_RUN_TAG: input_run})
    output = run_materialization_metadata(instance, output_run, output_key("events"))
    assert output["records_written"] == 40
    assert output["flow_ratio"] == pytest.approx(1.0)
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert f"staging/run-{input_run}-attempt-1-part-r-00000.json.gz" in keys
    assert f"output/run-{output_run}-attempt-1-part-r-00000.json" in keys


def _failure_message(result) -> str:
    """The headline a user sees on the failed step: the Failure's one-line description."""
    [step_failure] = result.get_step_failure_events()
    return step_failure.step_failure_data.user_failure_data.description


def test_bad_records_are_quarantined_under_the_threshold_and_fail_the_run_above_it(tmp_path: Path, instance) -> None:
    flow_file = write_flow_file(tmp_path)
    text = flow_file.read_text().replace("input_job:\n", "input_job:\n      max_error_records: 2\n")
    flow_file.write_text(text)
    defs = load_definitions(flow_file)
    raw = StorageResource().open(str(tmp_path / "data" / "input"))
    raw.write_bytes("batch=0/a.json", raw_records(0, 5) + b"{broken\n" + b"[1, 2]\n")
    ok = run_job(defs, instance, "events_input_job")
    staging = run_materialization_metadata(instance, ok, staging_key("events"))
    assert (staging["records_read"], staging["records_written"], staging["error_records"]) == (7, 5, 2)
    quarantine = StorageResource().open(str(tmp_path / "data" / "staging"))
    lines = [
        json.loads(line)
        for o in quarantine.list()
        if o.key.startswith(f"_errors/{ok}/")
        for line in quarantine.read_bytes(o.key).decode().splitlines()
    ]
    assert [(entry["line"], entry["raw"]) for entry in lines] == [(6, "{broken"), (7, "[1, 2]")]

    raw.write_bytes("batch=1/b.json", b"{bad\n" * 3 + raw_records(100, 1))
    failed = defs.resolve_job_def("events_input_job").execute_in_process(instance=instance, raise_on_error=False)
    assert not failed.success
    message = _failure_message(failed)
    assert "exceed max_error_records=2" in message and "batch=1/b.json line 1" in message
    assert "\n" not in message.strip()
    staged = [o.key for o in quarantine.list() if not o.key.startswith(("_errors/", "_glueflow/"))]
    assert staged == [f"run-{ok}-attempt-1-part-r-00000.json.gz"]  # the failed run wrote no output object


def test_staging_compression_level_reaches_the_staged_objects(tmp_path: Path, instance) -> None:
    staged_bytes = {}
    for level in (None, 9):
        root = tmp_path / f"level-{level}"
        flow_file = write_flow_file(root)
        if level is not None:
            document = yaml.safe_load(flow_file.read_text())
            document["flows"]["events"]["staging"]["compression_level"] = level
            flow_file.write_text(yaml.safe_dump(document))
        defs = load_definitions(flow_file)
        StorageResource().open(str(root / "data" / "input")).write_bytes("a.json", raw_records(0, 2000))
        run_job(defs, instance, "events_input_job")
        [staged] = (root / "data" / "staging").glob("run-*.json.gz")
        staged_bytes[level] = staged.read_bytes()
    # gzip's XFL byte is 2 where zlib wrote its smallest (level 9); the default (2) is ISA-L's, larger.
    assert staged_bytes[9][:2] == b"\x1f\x8b" and staged_bytes[9][8] == 2
    assert staged_bytes[None][:2] == b"\x1f\x8b" and staged_bytes[None][8] == 0
    assert len(staged_bytes[None]) > len(staged_bytes[9])
    assert gzip.decompress(staged_bytes[None]) == gzip.decompress(staged_bytes[9])


def test_missing_bucket_fails_with_one_line_naming_the_uri(
    tmp_path: Path, instance, moto_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    defs = load_definitions(write_flow_file(tmp_path, input_uri="s3://no-such-bucket-glueflow/raw"))
    failed = defs.resolve_job_def("events_input_job").execute_in_process(instance=instance, raise_on_error=False)
    assert not failed.success
    message = _failure_message(failed)
    assert "s3://no-such-bucket-glueflow" in message and "bucket does not exist" in message


def test_a_symlink_out_of_the_input_location_is_quarantined_and_counted(tmp_path: Path, instance) -> None:
    flow_file = write_flow_file(tmp_path)
    defs = load_definitions(flow_file)
    raw = StorageResource().open(str(tmp_path / "data" / "input"))
    raw.write_bytes("batch=0/a.json", raw_records(0, 5))
    secret = tmp_path / "outside.json"
    secret.write_bytes(raw_records(100, 3))
    (tmp_path / "data" / "input" / "batch=0" / "link.json").symlink_to(secret)
    failed = defs.resolve_job_def("events_input_job").execute_in_process(instance=instance, raise_on_error=False)
    assert not failed.success
    assert "link.json: symlink points outside the location" in _failure_message(failed)

    flow_file.write_text(flow_file.read_text().replace("input_job:\n", "input_job:\n      max_error_records: 1\n"))
    defs = load_definitions(flow_file)
    ok = run_job(defs, instance, "events_input_job")
    staging = run_materialization_metadata(instance, ok, staging_key("events"))
    assert (staging["records_written"], staging["error_files"]) == (5, 1)  # the outside records never read
