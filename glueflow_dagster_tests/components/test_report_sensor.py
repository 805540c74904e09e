"""`F_flow_report_sensor` redraws `F/flow_report` after every `F/output` materialization, however started."""

from pathlib import Path

from dagster import (
    DagsterEvent,
    DagsterEventType,
    DagsterInstance,
    DefaultSensorStatus,
    Definitions,
    RunRequest,
    SkipReason,
    build_sensor_context,
)

from glueflow_dagster.components.jobs import flow_report_key, output_key
from glueflow_dagster.components.report_sensor import report_redraw
from glueflow_dagster.components.resources import StorageResource
from glueflow_dagster.definitions import load_definitions
from glueflow_dagster_tests.conftest import raw_records


def _tick(defs: Definitions, instance: DagsterInstance) -> list[RunRequest]:
    sensor = defs.resolve_sensor_def("events_flow_report_sensor")
    return sensor.evaluate_tick(build_sensor_context(instance=instance, definitions=defs)).run_requests or []


def _after_one_input_run(flow_file: Path, instance: DagsterInstance) -> Definitions:
    """The flow's definitions after one producer batch and one successful Input run."""
    defs = load_definitions(flow_file)
    raw = StorageResource().open(str(flow_file.parent / "data" / "input"))
    raw.write_bytes("batch=0/a.json", raw_records(0, 40))
    assert defs.resolve_job_def("events_input_job").execute_in_process(instance=instance).success
    return defs


def test_the_sensor_runs_by_default_and_requests_nothing_before_the_first_output(
    flow_file: Path, instance: DagsterInstance
) -> None:
    defs = load_definitions(flow_file)
    assert defs.resolve_sensor_def("events_flow_report_sensor").default_status == DefaultSensorStatus.RUNNING
    skipped = report_redraw(instance, "events")
    assert isinstance(skipped, SkipReason) and "not been materialized" in (skipped.skip_message or "")


def test_a_ui_materialize_of_output_alone_is_redrawn_even_on_the_sensors_first_tick(
    flow_file: Path, instance: DagsterInstance
) -> None:
    """The case an edge-triggered rule misses: F/output materialized before the sensor ever ticked."""
    defs = _after_one_input_run(flow_file, instance)
    assert defs.resolve_job_def("events_output_job").execute_in_process(instance=instance).success
    # F_output_job redrew the report in its own run: nothing to request.
    assert _tick(defs, instance) == []

    asset_job = defs.resolve_implicit_global_asset_job_def()
    assert asset_job.execute_in_process(instance=instance, asset_selection=[output_key("events")]).success
    first = _tick(defs, instance)  # a fresh context: no cursor, no earlier tick
    assert len(first) == 1
    assert first[0].asset_selection == [flow_report_key("events")]
    # Two ticks before the redraw has run ask for the same run (one run key): Dagster launches it once.
    assert [r.run_key for r in _tick(defs, instance)] == [first[0].run_key]

    assert asset_job.execute_in_process(instance=instance, asset_selection=[flow_report_key("events")]).success
    assert _tick(defs, instance) == []


def test_no_redraw_is_requested_while_the_run_that_wrote_the_output_is_still_going(
    flow_file: Path, instance: DagsterInstance
) -> None:
    defs = _after_one_input_run(flow_file, instance)
    asset_job = defs.resolve_implicit_global_asset_job_def()
    done = asset_job.execute_in_process(instance=instance, asset_selection=[output_key("events")])
    assert done.success
    # The writer back in progress, as F_output_job is between its output step and its report step.
    run = instance.get_run_by_id(done.run_id)
    instance.handle_run_event(done.run_id, DagsterEvent(DagsterEventType.RUN_START.value, job_name=run.job_name))
    assert not instance.get_run_by_id(done.run_id).is_finished
    skipped = report_redraw(instance, "events")
    assert isinstance(skipped, SkipReason) and "still in progress" in (skipped.skip_message or "")
    instance.handle_run_event(done.run_id, DagsterEvent(DagsterEventType.RUN_SUCCESS.value, job_name=run.job_name))
    assert isinstance(report_redraw(instance, "events"), RunRequest)
