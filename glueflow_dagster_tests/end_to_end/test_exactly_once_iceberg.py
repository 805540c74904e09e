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

from glueflow_dagster.core.storage import ObjectInfo, location_uri
from glueflow_dagster_tests.end_to_end.test_exactly_once import apply, assert_no_process_left, check_after_quiescence
from glueflow_dagster_tests.support.duckdb_iceberg import iceberg_scan, require
from glueflow_dagster_tests.support.flow_driver import FLOW, FlowDriver

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
        from glueflow_dagster.core.iceberg_table import IcebergTarget, open_catalog

        output = load_config(self.path).flows[FLOW].output
        target = IcebergTarget(TABLE, location_uri(self.storage("output").uri).rstrip("/"), dict(output.catalog))
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
