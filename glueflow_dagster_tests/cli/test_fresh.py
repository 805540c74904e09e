"""`glueflow demo --fresh` in process: one flow's history and data go, other flows' stay, figures repeat."""

from __future__ import annotations

from pathlib import Path

from dagster import DagsterInstance, RunsFilter
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.remote_origin import InProcessCodeLocationOrigin, RemoteInstigatorOrigin, RemoteRepositoryOrigin
from dagster._core.scheduler.instigation import InstigatorState, InstigatorStatus, SensorInstigatorData
from dagster._core.test_utils import create_run_for_test
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from glueflow_dagster.cli.demo import run_demo
from glueflow_dagster.cli.fresh import start_fresh
from glueflow_dagster.components.bookmark_store import committed_bookmark
from glueflow_dagster.components.jobs import FLOW_TAG
from glueflow_dagster.components.resources import StorageResource
from glueflow_dagster.core.config import load_config
from glueflow_dagster.definitions import build_definitions
from glueflow_dagster_tests.conftest import write_flow_file


def _sensor_state(instance: DagsterInstance, name: str, cursor: str) -> InstigatorState:
    """A stored sensor state as the daemon keeps it (cursor included)."""
    location = InProcessCodeLocationOrigin(LoadableTargetOrigin(python_file=__file__))
    origin = RemoteInstigatorOrigin(RemoteRepositoryOrigin(location, "__repository__"), name)
    data = SensorInstigatorData(cursor=cursor)
    state = InstigatorState(origin, InstigatorType.SENSOR, InstigatorStatus.RUNNING, data)
    instance.add_instigator_state(state)
    return state


def test_fresh_removes_one_flows_history_and_data_and_the_demo_repeats_its_figures(
    tmp_path: Path, instance: DagsterInstance
) -> None:
    config = load_config(write_flow_file(tmp_path / "project", bookmark="enable"))
    flow = config.flows["events"]
    defs = build_definitions(config)
    first = run_demo(defs, instance, flow, 2)
    assert committed_bookmark(instance, "events", "bookmark_ctx").bookmark.version == 2
    other = create_run_for_test(instance, job_name="orders_input_job", tags={FLOW_TAG: "orders"})
    ours = _sensor_state(instance, "events_output_sensor", '{"follow": "old"}')
    theirs = _sensor_state(instance, "orders_output_sensor", '{"follow": "kept"}')

    lines: list[str] = []
    report = start_fresh(instance, flow, progress=lines.append)
    assert report.runs_deleted == 4 and report.sensor_cursors_cleared == 1
    assert report.objects_deleted[flow.input.uri] == 8  # 2 batches of 4 sample objects
    assert report.objects_deleted[flow.staging.uri] >= 2 and report.objects_deleted[flow.output.uri] >= 2
    assert any("deleting 4 runs" in line for line in lines)
    for location in (flow.input, flow.staging, flow.output):
        assert list(StorageResource().open(location.uri).list()) == []
    assert instance.get_run_ids(RunsFilter(tags={FLOW_TAG: "events"})) == []
    assert instance.get_run_ids() == [other.run_id]  # another flow's run stays
    assert committed_bookmark(instance, "events", "bookmark_ctx").bookmark.version == 0
    assert instance.get_instigator_state(ours.instigator_origin_id, ours.selector_id).instigator_data.cursor is None
    kept = instance.get_instigator_state(theirs.instigator_origin_id, theirs.selector_id)
    assert kept.instigator_data.cursor == '{"follow": "kept"}'

    again = run_demo(defs, instance, flow, 2)
    figures = [(row.cycle, row.input_bytes_written, row.output_bytes_read) for row in again]
    assert figures == [(row.cycle, row.input_bytes_written, row.output_bytes_read) for row in first]
