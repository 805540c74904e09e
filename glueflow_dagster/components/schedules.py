"""`F_input_schedule`: Glue's periodic trigger for the Input job (cron in UTC)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dagster import DefaultScheduleStatus, ScheduleDefinition

from glueflow_dagster.components.jobs import input_schedule_name
from glueflow_dagster.core.config import FlowConfig

if TYPE_CHECKING:  # not exported by dagster's public API
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition


def build_input_schedule(flow: FlowConfig, input_job: UnresolvedAssetJobDefinition) -> ScheduleDefinition:
    return ScheduleDefinition(
        name=input_schedule_name(flow.name),
        job=input_job,
        cron_schedule=flow.input_job.schedule or "*/30 * * * *",
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"Runs the {flow.name} Input job on '{flow.input_job.schedule}' (UTC).",
    )
