"""`glueflow maintain`: an Iceberg output's old snapshots expire, files in no snapshot go, and every record
is still in the table exactly once, read back through pyiceberg (issue 24 item 4).

The runs are real (the definitions, a Dagster instance, the SQLite catalog beside the flow file, a local
warehouse); "old" is a clock two hours ahead, past the default grace period.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster._core.test_utils import create_run_for_test

from glueflow_dagster.cli.maintain import run_maintain
from glueflow_dagster.components.resources import StorageResource
from glueflow_dagster.core import iceberg_commit
from glueflow_dagster.core.config import ConfigError, load_config
from glueflow_dagster.core.iceberg_maintain import (
    AWAITING,
    CURRENT,
    EXPIRE,
    IN_METADATA,
    LIVE,
    NOT_METADATA,
    YOUNG_METADATA,
)
from glueflow_dagster.core.iceberg_table import RUN_ID_PROPERTY
from glueflow_dagster.definitions import load_definitions
from glueflow_dagster_tests.components.test_assets import run_job
from glueflow_dagster_tests.components.test_iceberg_output import (
    iceberg_flow_file,
    output_run_dying_after_its_snapshot,
    records,
    the_table,
)
from glueflow_dagster_tests.conftest import write_flow_file

LATER_MS = int(time.time() * 1000) + 2 * 3600 * 1000  # past the default orphan_grace_s (3600 s)


def event_ids(table: Any) -> Counter[int]:
    return Counter(table.refresh().scan().to_arrow().column("event_id").to_pylist())


def data_files(warehouse: Path) -> set[str]:
    return {p.name for p in (warehouse / "analytics.events" / "data").iterdir()}


def metadata_files(warehouse: Path) -> set[str]:
    return {p.name for p in (warehouse / "analytics.events" / "metadata").iterdir()}


def test_maintain_expires_committed_snapshots_keeps_one_awaiting_adoption_and_removes_dead_runs_files(
    tmp_path: Path, instance: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse = tmp_path / "warehouse"
    flow_file = iceberg_flow_file(tmp_path, "data/input", "data/staging", warehouse.as_uri())
    flow = load_config(flow_file).flows["events"]
    defs = load_definitions(flow_file)
    raw = StorageResource().open(str(tmp_path / "data" / "input"))
    for name, first in (("a.json", 0), ("b.json", 20)):  # two committed runs: two snapshots
        raw.write_bytes(name, records(first, 20))
        run_job(defs, instance, "events_input_job")
        run_job(defs, instance, "events_output_job")
    raw.write_bytes("c.json", records(40, 20))
    run_job(defs, instance, "events_input_job")
    # A run dies after its snapshot, before its materialization: the next Output run adopts the snapshot.
    died_run_id = output_run_dying_after_its_snapshot(defs, instance, monkeypatch)
    # Another engine appends a row: the snapshot awaiting adoption is no longer the current one.
    table = the_table(flow_file, warehouse.as_uri())
    row = {"event_id": -1, "user_id": 0, "ts": datetime(2026, 12, 1, tzinfo=UTC)}
    other_file = warehouse / "analytics.events" / "data" / "other-engine.parquet"
    pq.write_table(pa.Table.from_pylist([row], schema=table.schema().as_arrow()), other_file)
    table.add_files([other_file.as_uri()])
    snapshots = the_table(flow_file, warehouse.as_uri()).snapshots()
    assert len(snapshots) == 4 and snapshots[2].summary.get(RUN_ID_PROPERTY) == died_run_id
    files_before, metadata_before = data_files(warehouse), metadata_files(warehouse)

    lines: list[str] = []
    plan, result = run_maintain(instance, flow, older_than_days=0, dry_run=True, progress=lines.append, now_ms=LATER_MS)

    assert result is None and lines
    assert [s.action for s in plan.snapshots] == [EXPIRE, EXPIRE, AWAITING, CURRENT]
    text = "\n".join(plan.lines(dry_run=True))
    assert "would expire" in text and "would remove 0 data files" in text
    assert (data_files(warehouse), metadata_files(warehouse)) == (files_before, metadata_before)
    assert len(the_table(flow_file, warehouse.as_uri()).snapshots()) == 4

    plan, result = run_maintain(instance, flow, older_than_days=0, now_ms=LATER_MS)

    assert result is not None and result.expired == [snapshots[0].snapshot_id, snapshots[1].snapshot_id]
    assert result.removed_files == 0 and result.removed_metadata_files >= 2
    assert data_files(warehouse) == files_before
    assert not {s.manifest_list.rsplit("/", 1)[-1] for s in snapshots[:2]} & metadata_files(warehouse)
    table = the_table(flow_file, warehouse.as_uri())
    assert [s.snapshot_id for s in table.snapshots()] == [s.snapshot_id for s in snapshots[2:]]
    assert event_ids(table) == Counter([*range(60), -1])  # every record exactly once

    # The kept snapshot is still adopted: the next run appends nothing again; the one after reads d.json.
    raw.write_bytes("d.json", records(60, 5))
    run_job(defs, instance, "events_input_job")
    run_job(defs, instance, "events_output_job")
    run_job(defs, instance, "events_output_job")
    assert event_ids(the_table(flow_file, warehouse.as_uri())) == Counter([*range(65), -1])

    # The last run dies after writing its data files, before its snapshot: they are in no snapshot.
    raw.write_bytes("e.json", records(65, 10))
    run_job(defs, instance, "events_input_job")
    appended = iceberg_commit.commit_files

    def dies_before_the_snapshot(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("worker lost before the Iceberg commit")

    monkeypatch.setattr(iceberg_commit, "commit_files", dies_before_the_snapshot)
    dead = defs.resolve_job_def("events_output_job").execute_in_process(instance=instance, raise_on_error=False)
    assert not dead.success
    monkeypatch.setattr(iceberg_commit, "commit_files", appended)
    dead_files = {name for name in data_files(warehouse) if dead.run_id in name}
    assert dead_files
    # A live run's file in no snapshot (it is about to append it) stays, however old.
    live = create_run_for_test(instance, job_name="events_output_job")
    live_file = f"run-{live.run_id}-attempt-1-part-r-00000.snappy.parquet"
    (warehouse / "analytics.events" / "data" / live_file).write_bytes(b"PAR1 being written")
    files_before = data_files(warehouse)

    plan, result = run_maintain(instance, flow, older_than_days=0, now_ms=LATER_MS)

    # Now committed (by its adopter), the dead run's snapshot expires like any other.
    assert result is not None and snapshots[2].snapshot_id in result.expired
    assert {Path(f.key).name for f in plan.removed} == dead_files
    assert {Path(f.key).name: f.action for f in plan.files}[live_file] == LIVE
    assert result.removed_files == len(dead_files)
    assert data_files(warehouse) == files_before - dead_files
    table = the_table(flow_file, warehouse.as_uri())
    assert len(table.snapshots()) == 1 and event_ids(table) == Counter([*range(65), -1])
    run_job(defs, instance, "events_output_job")  # reads e.json again, as if the dead run had never been
    assert event_ids(the_table(flow_file, warehouse.as_uri())) == Counter([*range(75), -1])


def test_maintain_refuses_a_flow_without_an_iceberg_output_and_a_missing_table_in_one_line(
    tmp_path: Path, instance: Any
) -> None:
    flow = load_config(write_flow_file(tmp_path / "json")).flows["events"]
    with pytest.raises(ConfigError, match=r"^flow events: maintain works on an Iceberg output; output.format is json$"):
        run_maintain(instance, flow)
    flow_file = iceberg_flow_file(tmp_path / "new", "data/input", "data/staging", (tmp_path / "wh").as_uri())
    flow = load_config(flow_file).flows["events"]
    with pytest.raises(Exception, match=r"^analytics.events: no such table in the catalog yet") as raised:
        run_maintain(instance, flow, dry_run=True)
    assert "\n" not in str(raised.value)


def test_the_maintain_command_refuses_with_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from glueflow_dagster.cli.main import main

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))  # main() opens the instance there
    flow_file = write_flow_file(tmp_path / "json")

    assert main(["maintain", "--flow", "events", "--config", str(flow_file), "--dry-run"]) == 2

    err = capsys.readouterr().err
    assert err == "glueflow: flow events: maintain works on an Iceberg output; output.format is json\n"
    assert main(["maintain", "--config", str(flow_file), "--older-than", "-1"]) == 2
    assert capsys.readouterr().err == "glueflow: --older-than: expected a number of days >= 0, got -1\n"


def test_maintain_removes_the_metadata_files_the_table_no_longer_references_past_their_grace(
    tmp_path: Path, instance: Any
) -> None:
    """The metadata log keeps the newest `write.metadata.previous-versions-max` metadata files (1 here): the
    older ones, and a failed commit's metadata file and manifest (in no metadata), go once older than an
    hour; the current metadata, its log and the snapshots' manifests stay; the table reads as before."""
    warehouse = tmp_path / "warehouse"
    flow_file = iceberg_flow_file(tmp_path, "data/input", "data/staging", warehouse.as_uri())
    flow = load_config(flow_file).flows["events"]
    defs = load_definitions(flow_file)
    raw = StorageResource().open(str(tmp_path / "data" / "input"))
    raw.write_bytes("a.json", records(0, 20))
    run_job(defs, instance, "events_input_job")
    run_job(defs, instance, "events_output_job")
    with the_table(flow_file, warehouse.as_uri()).transaction() as change:
        change.set_properties({"write.metadata.previous-versions-max": "1"})
    for first in (20, 40):
        raw.write_bytes(f"{first}.json", records(first, 20))
        run_job(defs, instance, "events_input_job")
        run_job(defs, instance, "events_output_job")
    table = the_table(flow_file, warehouse.as_uri())
    folder = warehouse / "analytics.events" / "metadata"
    for orphan in ("00042-lost-the-swap.metadata.json", "failed-append-m0.avro"):  # a failed commit's files
        (folder / orphan).write_bytes(b"{}")
    (folder / "notes.txt").write_bytes(b"not Iceberg's")
    kept = {Path(table.metadata_location).name, *(Path(e.metadata_file).name for e in table.metadata.metadata_log)}
    assert len(kept) == 2
    old_versions = {name for name in metadata_files(warehouse) if name.endswith(".metadata.json")} - kept
    assert len(old_versions) >= 3
    snapshots_before = [s.snapshot_id for s in table.snapshots()]

    plan, result = run_maintain(instance, flow, older_than_days=5)  # now: every unreferenced file is young

    assert result is not None and result.removed_metadata_files == 0
    reasons = {Path(f.key).name: f.action for f in plan.metadata_files}
    assert reasons["00042-lost-the-swap.metadata.json"] == reasons["failed-append-m0.avro"] == YOUNG_METADATA
    assert reasons["notes.txt"] == NOT_METADATA
    assert all(reasons[name] == IN_METADATA for name in kept)

    plan, result = run_maintain(instance, flow, older_than_days=5, dry_run=True, now_ms=LATER_MS)
    gone = old_versions | {"00042-lost-the-swap.metadata.json", "failed-append-m0.avro"}
    assert {Path(f.key).name for f in plan.removed_metadata} == gone
    assert f"would remove {len(gone)} metadata files" in "\n".join(plan.lines(dry_run=True))
    assert gone <= metadata_files(warehouse)

    plan, result = run_maintain(instance, flow, older_than_days=5, now_ms=LATER_MS)

    assert result is not None and result.expired == [] and result.removed_metadata_files == len(gone)
    assert not gone & metadata_files(warehouse) and kept <= metadata_files(warehouse)
    assert "notes.txt" in metadata_files(warehouse)
    table = the_table(flow_file, warehouse.as_uri())
    assert [s.snapshot_id for s in table.snapshots()] == snapshots_before
    assert event_ids(table) == Counter(range(60))
    raw.write_bytes("60.json", records(60, 5))  # the table takes the next run as before
    run_job(defs, instance, "events_input_job")
    run_job(defs, instance, "events_output_job")
    assert event_ids(the_table(flow_file, warehouse.as_uri())) == Counter(range(65))
