"""`F_output_sensor`: one Output run after each successful Input run, never two Output runs at once.

A plain cursor sensor rather than a run-status sensor: run-status sensors skip runs that finished
before their first tick, and Glue's conditional trigger must not lose an Input success while the
sensor was off.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from glueflow_dagster.jobs import INPUT_RUN_TAG, input_job_name, output_job_name, output_sensor_name

if TYPE_CHECKING:  # not exported by dagster's public API
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

# Runs that hold the Output job's single concurrency slot (Glue's max concurrency 1).
IN_FLIGHT_STATUSES = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]
SENSOR_INTERVAL_S = 30


@dataclass(frozen=True)
class FollowCursor:
    """The last Input run (by end time, then run id) whose Output run has been requested."""

    end_time: float = 0.0
    run_id: str = ""

    def to_json(self) -> str:
        return json.dumps({"input_end_time": self.end_time, "input_run_id": self.run_id})

    @classmethod
    def from_json(cls, text: str | None) -> FollowCursor:
        if not text:
            return cls()
        data = json.loads(text)
        return cls(float(data.get("input_end_time", 0.0)), str(data.get("input_run_id", "")))


def in_flight_run_id(instance: DagsterInstance, flow: str) -> str | None:
    records = instance.get_run_records(
        RunsFilter(job_name=output_job_name(flow), statuses=IN_FLIGHT_STATUSES), limit=1
    )
    return records[0].dagster_run.run_id if records else None


def unfollowed_input_runs(
    instance: DagsterInstance, flow: str, cursor: FollowCursor
) -> list[tuple[float, str]]:
    """Successful Input runs after the cursor, oldest first, as (end time, run id)."""
    # A run's update timestamp is at or after its end, so this bounds the query without missing any.
    since = datetime.fromtimestamp(max(cursor.end_time - 1.0, 0.0), tz=UTC)
    records = instance.get_run_records(
        RunsFilter(job_name=input_job_name(flow), statuses=[DagsterRunStatus.SUCCESS], updated_after=since)
    )
    runs = sorted((r.end_time or 0.0, r.dagster_run.run_id) for r in records)
    return [run for run in runs if run > (cursor.end_time, cursor.run_id)]


def already_followed(instance: DagsterInstance, flow: str, input_run_id: str) -> bool:
    """An Output run for this Input run exists (launched by an earlier tick, or by `glueflow demo`)."""
    records = instance.get_run_records(
        RunsFilter(job_name=output_job_name(flow), tags={INPUT_RUN_TAG: input_run_id}), limit=1
    )
    return bool(records)


def build_output_sensor(flow: str, output_job: UnresolvedAssetJobDefinition) -> SensorDefinition:
    @sensor(
        name=output_sensor_name(flow),
        job=output_job,
        minimum_interval_seconds=SENSOR_INTERVAL_S,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            f"Starts {output_job_name(flow)} after each successful {input_job_name(flow)} run, one at a time."
        ),
    )
    def output_sensor(context: SensorEvaluationContext) -> SensorResult | SkipReason:
        busy = in_flight_run_id(context.instance, flow)
        if busy:
            return SkipReason(f"{output_job_name(flow)} run {busy} is queued or running (max concurrency 1)")
        cursor = FollowCursor.from_json(context.cursor)
        for end_time, run_id in unfollowed_input_runs(context.instance, flow, cursor):
            cursor = FollowCursor(end_time, run_id)
            if already_followed(context.instance, flow, run_id):
                continue
            request = RunRequest(run_key=run_id, tags={INPUT_RUN_TAG: run_id})
            return SensorResult(run_requests=[request], cursor=cursor.to_json())
        return SensorResult(
            skip_reason=f"no successful {input_job_name(flow)} run without an Output run",
            cursor=cursor.to_json(),
        )

    return output_sensor
