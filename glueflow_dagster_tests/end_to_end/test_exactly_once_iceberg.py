"""Exactly-once through an Iceberg table under interleaved operator actions (issue 24 item 3).

The property test of ``test_exactly_once.py`` (the same moves: Input runs, sensor ticks, UI Materialize,
re-executions, SIGKILLed runs, two Output runs at once from two processes, late, rewritten and deleted
objects) on a flow whose output is ``format: iceberg`` (the SQLite catalog beside the flow file, a local
warehouse), with one more move: ``glueflow maintain --older-than 0`` (expire every snapshot it may, remove
the data files in no snapshot). The committed output is what the table holds, read through pyiceberg:
after every move no record is in it twice, and after quiescence every current record is in it exactly once,
read through pyiceberg and through DuckDB's own Iceberg reader (``iceberg_scan`` of the table's current
metadata file, DuckDB 1.5.5 in a child process: ``glueflow_dagster_tests/support/duckdb_iceberg.py``; the
tests skip without it unless ``GLUEFLOW_REQUIRE_DUCKDB_ICEBERG`` is set, as ``.ci/run`` sets it).
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glueflow_dagster.components.jobs import output_key
from glueflow_dagster.components.monitoring import run_materialization_metadata
from glueflow_dagster.core.storage import ObjectInfo
from glueflow_dagster_tests.components.test_iceberg_output import (  # noqa: F401 - a fixture, used by name
    s3_completes_multipart_uploads_as_s3_does,
)
from glueflow_dagster_tests.end_to_end.test_exactly_once import apply, assert_no_process_left, check_after_quiescence
from glueflow_dagster_tests.support.cuttable_proxy import CuttableProxy
from glueflow_dagster_tests.support.duckdb_iceberg import iceberg_scan, require
from glueflow_dagster_tests.support.flow_driver import FLOW, FlowDriver, S3Target

TABLE = "analytics.events"
ACTIONS = [
    "input_run",
    "tick",
    "ui_output",
    "reexecute",
    "kill_output",
    "two_at_once",
    "late",
    "rewrite_raw",
    "maintain",
]


class IcebergFlowDriver(FlowDriver):
    """The flow driver with the output as an Iceberg table; the committed output is the table's records."""

    def write_flow_file(self, **changes: Any) -> None:
        super().write_flow_file(**changes)
        document = yaml.safe_load(self.path.read_text(encoding="utf-8"))
        body = document["flows"][FLOW]
        grace = body["output"]["orphan_grace_s"]
        body["output"] = {"uri": self.uris["output"], "format": "iceberg", "table": TABLE, "orphan_grace_s": grace}
        self.path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        if hasattr(self, "defs"):
            from glueflow_dagster.definitions import load_definitions

            self.defs = load_definitions(self.path)

    def table(self) -> Any:
        from pyiceberg.exceptions import NoSuchTableError

        from glueflow_dagster.core.config import load_config
        from glueflow_dagster.core.iceberg_commit import table_target
        from glueflow_dagster.core.iceberg_table import open_catalog

        target = table_target(load_config(self.path).flows[FLOW], self.storage("output"))
        try:
            return open_catalog(target).load_table(target.identifier)
        except NoSuchTableError:
            return None

    def table_ids(self) -> Counter[int]:
        """The table's records through pyiceberg."""
        table = self.table()
        if table is None:
            return Counter()
        return Counter(table.scan(selected_fields=("event_id",)).to_arrow().column("event_id").to_pylist())

    def duckdb_ids(self) -> Counter[int]:
        """The table's records through DuckDB's Iceberg reader: ``iceberg_scan`` of the table's current
        metadata file (what the catalog points at), not a listing nor pyiceberg's plan."""
        table = self.table()
        if table is None:
            return Counter()
        return Counter(row[0] for row in iceberg_scan(table.metadata_location, "event_id"))

    def output_ids(self, objects: list[ObjectInfo]) -> Counter[int]:
        """The table's records, whatever objects are asked about: readers read the table, not a listing
        (so the event log's view and the commit manifests' view are the table's, and agree)."""
        return self.table_ids()

    def snapshot(self) -> list[str]:
        """No committed object gone (but the manifests of snapshots maintenance expired: Iceberg's metadata,
        not glueflow's parts; the scan below reads every manifest the table still needs), and no record in
        the table twice, at any moment."""
        expired_metadata = f"output/{TABLE}/metadata/"
        gone = [key for key in super().snapshot() if not key.startswith(expired_metadata)]
        twice = sorted(i for i, n in self.table_ids().items() if n > 1)
        return gone + [f"table {TABLE}: event_id {i} twice" for i in twice[:10]]

    def maintain(self) -> None:
        from glueflow_dagster.cli.maintain import run_maintain
        from glueflow_dagster.core.config import load_config

        flow = load_config(self.path).flows[FLOW]
        plan, result = run_maintain(self.instance, flow, older_than_days=0)
        self.note(f"maintain: expired {result.expired if result else []}, removed {len(plan.removed)} files")


def iceberg_apply(flow: IcebergFlowDriver, action: str, delay: float) -> None:
    if action == "maintain":
        if flow.table_ids():  # the table exists once an Output run has written to it
            flow.maintain()
        gone = flow.snapshot()
        assert not gone, (action, gone, flow.log[-10:])
    else:
        apply(flow, action, delay)


def assert_exactly_once_in_the_table(flow: IcebergFlowDriver) -> None:
    """Read through pyiceberg and through DuckDB alike: every current record exactly once, a record of a
    rewritten or deleted raw version at most once, nothing else."""
    ids = flow.table_ids()
    assert ids == flow.duckdb_ids()
    current = {i for ids_ in flow.truth.current.values() for i in ids_}
    assert {i: ids[i] for i in current if ids[i] != 1} == {}
    assert {i: n for i, n in ids.items() if i not in current and (n > 1 or i not in flow.truth.superseded)} == {}


@pytest.mark.slow
@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    actions=st.lists(st.sampled_from(ACTIONS), min_size=3, max_size=5),
    delays=st.lists(st.floats(0.0, 4.0), min_size=6, max_size=6),
    seed=st.integers(0, 2**16),
)
def test_property_exactly_once_through_an_iceberg_table_under_interleaved_operator_actions(
    actions: list[str], delays: list[float], seed: int
) -> None:
    require()  # DuckDB's Iceberg reader: skip (fail in CI) before any run if it is not installed
    with tempfile.TemporaryDirectory(prefix="glueflow-eo-iceberg-") as tmp:
        flow = IcebergFlowDriver(Path(tmp), seed=seed, input_target_file_bytes=200_000)
        try:
            flow.add_raw(20)
            flow.input_run()
            for action, delay in zip(actions, delays, strict=False):
                iceberg_apply(flow, action, delay)
            check_after_quiescence(flow, len(actions))
            iceberg_apply(flow, "maintain", 0.0)  # maintenance after quiescence loses and duplicates nothing
            assert_exactly_once_in_the_table(flow)
        finally:
            flow.close()
        assert_no_process_left(flow)


@pytest.mark.slow
def test_exactly_once_through_the_table_after_a_killed_output_run_and_maintenance(tmp_path: Path) -> None:
    """One fixed sequence of the property (about 90 s here): a SIGKILLed Output run, maintenance, a tick, two
    Output runs at once, maintenance again; every record exactly once in the table."""
    require()
    flow = IcebergFlowDriver(tmp_path, seed=7, input_target_file_bytes=200_000)
    try:
        flow.add_raw(20)
        flow.input_run()
        for action in ("tick", "kill_output", "maintain", "two_at_once", "maintain", "ui_output"):
            iceberg_apply(flow, action, 1.0)
        check_after_quiescence(flow, 6)
        iceberg_apply(flow, "maintain", 0.0)
        assert_exactly_once_in_the_table(flow)
    finally:
        flow.close()
    assert_no_process_left(flow)


# --- An S3 outage mid-commit: the Iceberg output on the moto server behind a cuttable proxy --------------

# Where the S3 endpoint is lost during the Output run's commit (core.iceberg_commit, docs/protocol.md):
# - "data_files": the data files are complete and glueflow's commit manifest written; pyiceberg's append
#   (which reads the files' footers for their statistics) never reaches S3: no snapshot;
# - "metadata_file": the append's manifests are written, the new metadata file is not: no snapshot;
# - "snapshot": the snapshot is committed (the catalog points at it), then the endpoint is lost before
#   the materialization (the run's next read of the table fails): the next run adopts that snapshot.
CUT_POINTS = ("data_files", "metadata_file", "snapshot")


def endpoint_lost_at(cut_at: str, proxy: CuttableProxy, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Patch the Output run's commit (in this process) to cut the S3 endpoint at ``cut_at``, once; the list
    gets ``cut_at`` when it fired."""
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.table import Table
    from pyiceberg.table.update import AddSnapshotUpdate

    fired: list[str] = []

    def cut() -> None:
        if not fired:
            proxy.cut()
            fired.append(cut_at)

    add_files, commit_table = Table.add_files, SqlCatalog.commit_table

    def adding(self: Table, *args: Any, **kwargs: Any) -> Any:
        if cut_at == "data_files":
            cut()
        done = add_files(self, *args, **kwargs)
        if cut_at == "snapshot":
            cut()
        return done

    def committing(self: SqlCatalog, table: Table, requirements: Any, updates: Any) -> Any:
        # Only the append's commit (it adds a snapshot), not a schema or spec change.
        if cut_at == "metadata_file" and any(isinstance(update, AddSnapshotUpdate) for update in updates):
            cut()
        return commit_table(self, table, requirements, updates)

    monkeypatch.setattr(Table, "add_files", adding)
    monkeypatch.setattr(SqlCatalog, "commit_table", committing)
    return fired


def step_failure(flow: IcebergFlowDriver, run_id: str) -> str:
    from dagster import DagsterEventType

    for record in flow.instance.get_records_for_run(run_id, of_type=DagsterEventType.STEP_FAILURE).records:
        event = record.event_log_entry.dagster_event
        return str(event.step_failure_data.error.message)
    return ""


@pytest.mark.slow
@pytest.mark.usefixtures("s3_completes_multipart_uploads_as_s3_does")
@pytest.mark.parametrize("cut_at", CUT_POINTS)
def test_an_s3_outage_mid_commit_leaves_every_record_exactly_once_in_the_table(
    cut_at: str,
    tmp_path: Path,
    moto_server: str,
    s3_client: Any,
    s3_bucket: str,
) -> None:
    require()
    proxy = CuttableProxy(moto_server)
    flow = IcebergFlowDriver(tmp_path / "flow", s3=S3Target(s3_bucket, proxy, s3_client), seed=3)
    try:
        flow.add_raw(40)
        assert flow.input_run().success
        assert flow.output_run().success  # the table exists, with one snapshot
        for _ in range(3):
            flow.add_raw(30)
        assert flow.input_run().success
        [request] = flow.tick()
        with pytest.MonkeyPatch.context() as patched:  # not the fixture's: its moto patch stays
            fired = endpoint_lost_at(cut_at, proxy, patched)
            failed = flow.output_run(request)
        if fired:
            proxy.restore()
        assert fired == [cut_at] and not failed.success
        message = step_failure(flow, failed.run_id).strip()  # Dagster's "dagster...Failure: <the run's line>"
        assert "iceberg table analytics.events: " in message and "\n" not in message, message
        runs = [s.summary["glueflow.run_id"] for s in flow.table().snapshots()]
        assert runs.count(failed.run_id) == (1 if cut_at == "snapshot" else 0)

        flow.add_raw(20)  # new input: the recovery run plans more than the failed one did
        assert flow.input_run().success
        recovery = flow.ui_materialize()
        assert recovery.success
        # The snapshot holds the failed run's bookmark version: the recovery adopts it (no second append);
        # otherwise the failed run left files in no snapshot, and the recovery appends its own.
        adopted = run_materialization_metadata(flow.instance, recovery.run_id, output_key(FLOW))
        assert adopted.get("iceberg_adopted_run_id") == (failed.run_id if cut_at == "snapshot" else None)
        check_after_quiescence(flow, 3)
        iceberg_apply(flow, "maintain", 0.0)
        assert_exactly_once_in_the_table(flow)
        assert not flow.snapshot()
    finally:
        flow.close()
        proxy.close()
    assert_no_process_left(flow)
