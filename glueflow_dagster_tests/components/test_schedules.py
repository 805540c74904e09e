"""`F_input_schedule`: the flow's cron in UTC, running by default, targeting the Input job."""

from datetime import UTC, datetime
from pathlib import Path

from dagster import DefaultScheduleStatus, build_schedule_context

from glueflow_dagster.definitions import load_definitions
from glueflow_dagster_tests.conftest import write_flow_file


def test_schedule_runs_the_input_job_on_the_flows_cron(tmp_path: Path, instance) -> None:
    defs = load_definitions(write_flow_file(tmp_path, schedule="*/15 * * * *"))
    schedule = defs.resolve_schedule_def("events_input_schedule")
    assert schedule.cron_schedule == "*/15 * * * *"
    assert schedule.execution_timezone == "UTC"
    assert schedule.default_status == DefaultScheduleStatus.RUNNING
    assert schedule.job_name == "events_input_job"
    context = build_schedule_context(
        instance=instance, scheduled_execution_time=datetime(2026, 1, 1, 12, 30, tzinfo=UTC)
    )
    [request] = schedule.evaluate_tick(context).run_requests
    assert request.job_name in (None, "events_input_job")


def test_input_and_output_jobs_carry_the_concurrency_tags(tmp_path: Path) -> None:
    defs = load_definitions(write_flow_file(tmp_path, flow="orders"))
    for job in ("orders_input_job", "orders_output_job"):
        tags = defs.resolve_job_def(job).tags
        assert tags["glueflow/max_concurrency"] == job
        assert tags["glueflow/flow"] == "orders"
