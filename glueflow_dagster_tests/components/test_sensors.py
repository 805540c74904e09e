"""`F_output_sensor` ticks against a real instance with real Input and Output runs."""

from pathlib import Path

from dagster import DagsterInstance, DagsterRunStatus, Definitions, build_sensor_context
from dagster._core.test_utils import create_run_for_test

from glueflow_dagster.components.jobs import INPUT_RUN_TAG
from glueflow_dagster.components.resources import StorageResource
from glueflow_dagster.components.sensors import IN_FLIGHT_STATUSES, FollowCursor, in_flight_run_id
from glueflow_dagster.definitions import load_definitions
from glueflow_dagster_tests.conftest import raw_records

SENSOR = "events_output_sensor"


def tick(defs: Definitions, instance: DagsterInstance, cursor: str | None):
    with build_sensor_context(instance=instance, cursor=cursor, definitions=defs, resources=defs.resources) as context:
        return defs.resolve_sensor_def(SENSOR).evaluate_tick(context)


def input_run(defs: Definitions, instance: DagsterInstance, flow_file: Path, batch: int) -> str:
    raw = StorageResource().open(str(flow_file.parent / "data" / "input"))
    raw.write_bytes(f"batch={batch}/a.json", raw_records(batch * 10, 10))
    result = defs.resolve_job_def("events_input_job").execute_in_process(instance=instance)
    return result.run_id


def launch(defs: Definitions, instance: DagsterInstance, request) -> str:
    result = defs.resolve_job_def("events_output_job").execute_in_process(
        instance=instance, tags=request.tags, run_config=request.run_config
    )
    assert result.success
    return result.run_id


def test_no_input_runs_no_request(flow_defs: Definitions, instance: DagsterInstance) -> None:
    result = tick(flow_defs, instance, None)
    assert result.run_requests == []
    assert "no successful events_input_job run" in result.skip_message


def test_follows_every_input_success_once_oldest_first_including_runs_finished_while_off(
    flow_file: Path, instance: DagsterInstance
) -> None:
    defs = load_definitions(flow_file)
    # Two Input runs finish before the sensor ever ticks (it was off).
    first, second = input_run(defs, instance, flow_file, 0), input_run(defs, instance, flow_file, 1)

    result = tick(defs, instance, None)
    [request] = result.run_requests
    assert request.run_key == first and request.tags[INPUT_RUN_TAG] == first
    assert FollowCursor.from_json(result.cursor).run_id == first
    launch(defs, instance, request)

    result = tick(defs, instance, result.cursor)
    [request] = result.run_requests
    assert request.run_key == second
    launch(defs, instance, request)

    result = tick(defs, instance, result.cursor)
    assert result.run_requests == []
    # Even with the cursor lost, an Input run that already has its Output run is not followed twice.
    assert tick(defs, instance, None).run_requests == []


def test_no_request_while_an_output_run_is_queued_or_running(flow_file: Path, instance: DagsterInstance) -> None:
    defs = load_definitions(flow_file)
    input_run(defs, instance, flow_file, 0)
    # QUEUED runs need a code-location origin to be created by hand; the dagster dev test covers them live.
    assert DagsterRunStatus.QUEUED in IN_FLIGHT_STATUSES
    for status in (DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED):
        busy = create_run_for_test(instance, job_name="events_output_job", status=status)
        result = tick(defs, instance, None)
        assert result.run_requests == []
        assert busy.run_id in result.skip_message and "max concurrency 1" in result.skip_message
        instance.report_run_failed(busy)
    # Once the slot is free, a later tick catches up.
    assert len(tick(defs, instance, None).run_requests) == 1


def test_a_run_that_never_started_stops_holding_the_slot_after_a_timeout(
    flow_file: Path, instance: DagsterInstance
) -> None:
    input_run(load_definitions(flow_file), instance, flow_file, 0)
    stuck = create_run_for_test(instance, job_name="events_output_job", status=DagsterRunStatus.NOT_STARTED)
    assert in_flight_run_id(instance, "events") == stuck.run_id  # young: it may still be launched
    assert in_flight_run_id(instance, "events", not_started_timeout_s=0) is None
    running = create_run_for_test(instance, job_name="events_output_job", status=DagsterRunStatus.STARTED)
    assert in_flight_run_id(instance, "events", not_started_timeout_s=0) == running.run_id  # a run never times out


def test_failed_input_runs_are_not_followed(flow_file: Path, instance: DagsterInstance) -> None:
    defs = load_definitions(flow_file)
    create_run_for_test(instance, job_name="events_input_job", status=DagsterRunStatus.FAILURE)
    assert tick(defs, instance, None).run_requests == []


def test_cursor_round_trip() -> None:
    cursor = FollowCursor(123.5, "abc")
    assert FollowCursor.from_json(cursor.to_json()) == cursor
    assert FollowCursor.from_json(None) == FollowCursor()
