"""Input + Output runs with `output.format: iceberg`, in the core: one snapshot per bookmark version.

Real parts: the polars stage, local folders, pyiceberg's SQL catalog on SQLite (beside the flow file, the
default), the table read back through pyiceberg and polars. The commit log is the in-memory one of
test_job_runs (the shell's is Dagster's event log; see components/test_iceberg_output.py for that).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from glueflow_dagster.core.bookmarks import STATE_KEY, VERSION_KEY
from glueflow_dagster.core.commits import Attempt, CommittedParts
from glueflow_dagster.core.config import FlowConfig, load_config
from glueflow_dagster.core.iceberg_commit import ADOPTED_KEY, SNAPSHOT_KEY
from glueflow_dagster.core.iceberg_table import (
    ATTEMPT_PROPERTY,
    BOOKMARK_VERSION_PROPERTY,
    RUN_ID_PROPERTY,
    IcebergTarget,
    open_catalog,
)
from glueflow_dagster.core.job_run import ROW_COUNT_KEY, URI_KEY, RunRefused
from glueflow_dagster.core.output_run import OutputRequest, run_output
from glueflow_dagster_tests.conftest import raw_records, write_flow_file
from glueflow_dagster_tests.core.test_job_runs import (
    MemoryCommitLog,
    OutputLog,
    _input,
    _output,
    _stores,
    polars_stage,
)


def iceberg_flow(tmp_path: Path, partition_keys: list[str] | None = None, grace_s: int = 3600) -> FlowConfig:
    path = write_flow_file(tmp_path, bookmark="enable")
    document = yaml.safe_load(path.read_text())
    output = {"uri": "data/warehouse", "format": "iceberg", "table": "analytics.events", "orphan_grace_s": grace_s}
    if partition_keys:
        output["partition_keys"] = partition_keys
    document["flows"]["events"]["output"] = output
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return load_config(path).flows["events"]


def output_now(flow: FlowConfig, log: MemoryCommitLog, run_id: str) -> dict[str, Any]:
    """An Output run at the present time (`_output` runs at 0 ms: no orphan is ever old enough to remove)."""
    _, staging, output = _stores(flow)
    try:
        outcome = run_output(
            flow, OutputLog(log), staging, output, Attempt(run_id, 1), OutputRequest(), polars_stage(),
            job_name="events_output_job", now_ms=int(time.time() * 1000) + 1000, info=lambda _msg: None,
        )  # fmt: skip
        log.record(log.output, run_id, outcome.metadata)
    finally:
        log.ended.add(run_id)
    return outcome.metadata


def table_of(flow: FlowConfig) -> Any:
    target = IcebergTarget(flow.output.table or "", Path(flow.output.uri).as_uri(), flow.output.catalog)
    return open_catalog(target).load_table(target.identifier)


def table_ids(flow: FlowConfig) -> list[int]:
    return sorted(table_of(flow).scan().to_arrow().column("event_id").to_pylist())


def summaries(flow: FlowConfig) -> list[dict[str, str]]:
    return [dict(snapshot.summary.additional_properties) for snapshot in table_of(flow).snapshots()]


def test_input_then_output_appends_one_snapshot_per_run_read_back_through_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLARS_ICEBERG_PLANNER", "pyiceberg")  # polars_iceberg is not a dependency
    flow = iceberg_flow(tmp_path)
    raw, _, output = _stores(flow)
    log = MemoryCommitLog()
    raw.write_bytes("a.json", raw_records(0, 120))
    _input(flow, log, "in-1")

    first = _output(flow, log, "out-1")

    table = table_of(flow)
    assert (tmp_path / ".glueflow" / "catalog.db").is_file()  # the SQLite catalog beside the flow file
    assert table.location() == f"{Path(flow.output.uri).as_uri()}/analytics.events"
    assert first[SNAPSHOT_KEY] == str(table.current_snapshot().snapshot_id)
    assert (first[ROW_COUNT_KEY], first["dagster/table_name"], first[URI_KEY]) == (
        120,
        "analytics.events",
        table.location(),
    )
    assert table_ids(flow) == list(range(120))
    assert pl.scan_iceberg(table).select(pl.len()).collect().item() == 120
    [summary] = summaries(flow)
    assert (summary[RUN_ID_PROPERTY], summary[ATTEMPT_PROPERTY]) == ("out-1", "1")
    assert summary[BOOKMARK_VERSION_PROPERTY] == "bookmark_ctx/v0"
    data = [obj.key for obj in output.list() if obj.key.startswith("analytics.events/data/")]
    assert data and all(key.split("/")[-1].startswith("run-out-1-attempt-1-part-r-") for key in data)

    nothing_new = _output(flow, log, "out-2")  # nothing unread: no snapshot
    assert len(summaries(flow)) == 1 and nothing_new[ROW_COUNT_KEY] == 0

    raw.write_bytes("b.json", raw_records(120, 30))
    _input(flow, log, "in-2")
    _output(flow, log, "out-3")
    assert [s[BOOKMARK_VERSION_PROPERTY] for s in summaries(flow)] == ["bookmark_ctx/v0", "bookmark_ctx/v1"]
    assert table_ids(flow) == list(range(150))


def test_partition_transforms_give_each_data_file_one_partition(tmp_path: Path) -> None:
    flow = iceberg_flow(tmp_path, partition_keys=["user_id"])
    raw, _, _ = _stores(flow)
    log = MemoryCommitLog()
    raw.write_bytes("a.json", raw_records(0, 70))
    _input(flow, log, "in-1")
    _output(flow, log, "out-1")
    table = table_of(flow)
    assert [(f.name, str(f.transform)) for f in table.spec().fields] == [("user_id", "identity")]
    files = table.inspect.files()
    assert files.num_rows == 7  # user ids 0..6: one data file each
    assert table.scan(row_filter="user_id == 3").to_arrow().num_rows == 10
    assert table_ids(flow) == list(range(70))


def test_a_crash_between_the_snapshot_and_the_glueflow_commit_is_adopted_by_the_next_run(tmp_path: Path) -> None:
    """The run appends its snapshot and dies before its materialization: the next run (planning from the
    same bookmark version, with more objects arrived meanwhile) adopts that snapshot, commits the dead run's
    bookmark, appends nothing, and the objects that arrived are read by the run after. Garbage collection
    (no grace) never removes the adopted snapshot's files."""
    flow = iceberg_flow(tmp_path, grace_s=0)
    raw, staging, output = _stores(flow)
    log = MemoryCommitLog()
    raw.write_bytes("a.json", raw_records(0, 40))
    _input(flow, log, "in-1")
    died = run_output(
        flow, OutputLog(log), staging, output, Attempt("out-dead", 1), OutputRequest(), polars_stage(),
        job_name="events_output_job", now_ms=0, info=lambda _msg: None,
    )  # fmt: skip
    log.ended.add("out-dead")  # its materialization was never written
    assert table_ids(flow) == list(range(40))
    raw.write_bytes("b.json", raw_records(40, 25))
    _input(flow, log, "in-2")

    adopted = output_now(flow, log, "out-next")  # garbage collection first, with no grace

    assert adopted[ADOPTED_KEY] == "out-dead" and adopted[SNAPSHOT_KEY] == died.metadata[SNAPSHOT_KEY]
    assert adopted[STATE_KEY] == died.metadata[STATE_KEY] and adopted[VERSION_KEY] == 1
    assert adopted["orphaned_files"] == 0  # the dead run's files are the snapshot's: not orphans
    assert len(summaries(flow)) == 1 and table_ids(flow) == list(range(40))  # nothing appended again
    _output(flow, log, "out-after")
    assert table_ids(flow) == list(range(65))
    assert [s[RUN_ID_PROPERTY] for s in summaries(flow)] == ["out-dead", "out-after"]


def test_two_output_runs_at_once_give_one_snapshot_per_bookmark_version(tmp_path: Path) -> None:
    flow = iceberg_flow(tmp_path)
    raw, _, _ = _stores(flow)
    log = MemoryCommitLog()
    raw.write_bytes("a.json", raw_records(0, 60))
    _input(flow, log, "in-1")
    both_staged = threading.Barrier(2)
    outcomes: dict[str, Any] = {}

    def run(run_id: str) -> None:
        try:
            outcomes[run_id] = _output(flow, log, run_id, polars_stage(after_stage=both_staged.wait))
        except RunRefused as err:
            outcomes[run_id] = err
        except BaseException as err:
            both_staged.abort()  # the other run stops waiting
            outcomes[run_id] = err
            raise

    threads = [threading.Thread(target=run, args=(f"out-{n}",)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    refused = [o for o in outcomes.values() if isinstance(o, RunRefused)]
    assert len(outcomes) == 2 and len(refused) <= 1
    assert all(isinstance(o, dict | RunRefused) for o in outcomes.values()), outcomes
    assert [s[BOOKMARK_VERSION_PROPERTY] for s in summaries(flow)] == ["bookmark_ctx/v0"]
    assert table_ids(flow) == list(range(60))


def test_a_re_execution_after_a_committed_run_appends_nothing(tmp_path: Path) -> None:
    """A re-execution of a run whose commit went through plans from the new version: nothing is unread, no
    snapshot; the same manifest run again (the sensor's frozen plan) is refused by the fence."""
    flow = iceberg_flow(tmp_path)
    raw, _, _ = _stores(flow)
    log = MemoryCommitLog()
    raw.write_bytes("a.json", raw_records(0, 30))
    _input(flow, log, "in-1")
    _output(flow, log, "out-1")
    _output(flow, log, "out-1-again")
    assert len(summaries(flow)) == 1 and table_ids(flow) == list(range(30))


def test_a_run_whose_append_lands_second_adopts_and_its_files_stay_out_of_every_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A zombie's append lands between this run's look for its version and its own append: the append
    finds the version (pyiceberg's retries are off, glueflow looks again), appends nothing and adopts; this
    run's data files are in no snapshot and its commit lists none (garbage collection removes them)."""
    import json

    from glueflow_dagster.core import iceberg_commit
    from glueflow_dagster.core.commits import COMMIT_KEY, commit_manifest_key

    flow = iceberg_flow(tmp_path)
    raw, staging, output = _stores(flow)
    log = MemoryCommitLog()
    raw.write_bytes("a.json", raw_records(0, 20))
    _input(flow, log, "in-1")
    run_output(
        flow,
        OutputLog(log),
        staging,
        output,
        Attempt("out-zombie", 1),
        OutputRequest(),
        polars_stage(),
        job_name="events_output_job",
        now_ms=0,
        info=lambda _msg: None,
    )  # fmt: skip  (appended, and never materialized: it is still "running" somewhere)
    looks = []
    real_look = iceberg_commit.snapshot_of_version

    def first_look_misses(table: Any, version: str, *known: Any) -> int | None:
        looks.append(version)
        return None if len(looks) == 1 else real_look(table, version, *known)

    monkeypatch.setattr(iceberg_commit, "snapshot_of_version", first_look_misses)
    log.ended.add("out-zombie")  # so this run may claim the version

    second = _output(flow, log, "out-second")

    assert second[ADOPTED_KEY] == "out-zombie" and len(looks) == 2
    assert [s[RUN_ID_PROPERTY] for s in summaries(flow)] == ["out-zombie"] and table_ids(flow) == list(range(20))
    assert second[COMMIT_KEY]["parts"] == []
    assert json.loads(output.read_bytes(commit_manifest_key("out-second")))["parts"] == []
    own = [obj.key for obj in output.list() if "run-out-second-attempt-1-part-r-" in obj.key]
    referenced = {path.rsplit("/", 1)[-1] for path in table_of(flow).inspect.files().column("file_path").to_pylist()}
    assert own and not {key.rsplit("/", 1)[-1] for key in own} & referenced


def test_a_type_iceberg_cannot_promote_is_refused_in_one_line_before_anything_is_written(tmp_path: Path) -> None:
    flow = iceberg_flow(tmp_path)
    raw, _, output = _stores(flow)
    log = MemoryCommitLog()
    raw.write_bytes("a.json", raw_records(0, 10))
    _input(flow, log, "in-1")
    _output(flow, log, "out-1")
    path = tmp_path / "glueflow.yaml"
    document = yaml.safe_load(path.read_text())
    document["flows"]["events"]["output_job"]["mappings"][1] = ["user_id", "long", "user_id", "string"]
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    changed = load_config(path).flows["events"]
    before = sorted(obj.key for obj in output.list())

    with pytest.raises(RunRefused) as refused:
        _output(changed, log, "out-2")

    assert str(refused.value) == (
        "analytics.events: column 'user_id' is long in the table and string in the output mapping: Iceberg "
        "promotes only int -> long, float -> double and a decimal's precision"
    )
    assert sorted(obj.key for obj in output.list()) == before and list(output.pending_uploads()) == []


def test_an_unreachable_catalog_fails_the_run_in_one_line_without_its_credentials(tmp_path: Path) -> None:
    path = write_flow_file(tmp_path, bookmark="enable")
    document = yaml.safe_load(path.read_text())
    document["flows"]["events"]["output"] = {
        "uri": "data/warehouse",
        "format": "iceberg",
        "table": "analytics.events",
        "catalog": {"type": "rest", "uri": "http://etl:s3cret@127.0.0.1:9/catalog"},
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    flow = load_config(path).flows["events"]
    log = MemoryCommitLog()

    with pytest.raises(RunRefused) as refused:
        _output(flow, log, "out-1")

    message = str(refused.value)
    assert message.startswith("iceberg table analytics.events: ") and "\n" not in message
    assert "s3cret" not in message and len(message) < 400


class ForgetfulOutputLog(OutputLog):
    """The commit log of a new Dagster instance beside an old table: it knows only its own runs."""

    def __init__(self, log: MemoryCommitLog, runs: set[str]) -> None:
        super().__init__(log)
        self.runs = runs

    def committed_output_parts(self) -> CommittedParts:
        return CommittedParts(super().committed_output_parts().lookup, known_run=lambda run_id: run_id in self.runs)


def test_a_snapshot_of_another_instances_history_is_never_adopted(tmp_path: Path) -> None:
    """A new (wiped) Dagster instance starts its bookmark again at version 0 beside a table whose first
    snapshot carries version 0 of the old history: adopting it would skip this history's records. It is
    no run this instance knows: the run appends (the records are in the table twice, as a prefix output
    would hold them twice after a wiped instance; nothing is lost)."""
    flow = iceberg_flow(tmp_path)
    raw, staging, output = _stores(flow)
    old = MemoryCommitLog()
    raw.write_bytes("a.json", raw_records(0, 20))
    _input(flow, old, "in-old")
    _output(flow, old, "out-old")
    new = MemoryCommitLog(ended=set(old.ended))  # the old runs' claims are stale
    _input(flow, new, "in-new")
    forgetful = ForgetfulOutputLog(new, {"in-new", "out-new"})
    outcome = run_output(
        flow, forgetful, staging, output, Attempt("out-new", 1), OutputRequest(), polars_stage(),
        job_name="events_output_job", now_ms=0, info=lambda _msg: None,
    )  # fmt: skip

    assert ADOPTED_KEY not in outcome.metadata and outcome.metadata[ROW_COUNT_KEY] == 20
    assert [s[RUN_ID_PROPERTY] for s in summaries(flow)] == ["out-old", "out-new"]
    assert table_ids(flow) == sorted(list(range(20)) * 2)
