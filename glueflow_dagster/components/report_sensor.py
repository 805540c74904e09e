"""`F_flow_report_sensor`: `F/flow_report` is redrawn after every materialization of `F/output`, however
it was started (`F_output_job`, a UI "Materialize", a backfill, a re-execution of the output step alone).

The sensor compares states, not events: it requests a redraw whenever the latest `F/output`
materialization is newer (a higher event-log storage id) than the latest `F/flow_report` one and the run
that wrote it has finished. An edge-triggered rule ("a dependency was updated since the previous tick",
Dagster's eager automation condition) misses an update that lands before the rule's first tick or
between a tick and the cursor it records, and then never redraws the chart; a comparison of the two
latest records cannot miss one, and the run key (the storage id of the `F/output` record) keeps two
ticks from requesting the same redraw twice.
"""

from __future__ import annotations

from dagster import (
    AssetKey,
    DagsterInstance,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)
from dagster._core.event_api import EventLogRecord

from glueflow_dagster.components.jobs import FLOW_TAG, flow_report_key, output_job_name, output_key
from glueflow_dagster.core.config import FlowConfig

REPORT_SENSOR_INTERVAL_S = 30
REDRAW_TAG = "glueflow/redraws_output_materialization"


def latest_materialization(instance: DagsterInstance, key: AssetKey) -> EventLogRecord | None:
    """The newest materialization record of `key`, with its storage id (the event log's order)."""
    records = instance.fetch_materializations(key, limit=1).records
    return records[0] if records else None


def report_redraw(instance: DagsterInstance, flow: str) -> RunRequest | SkipReason:
    """What the sensor does now: a run request for `F/flow_report`, or why none is needed yet."""
    output = latest_materialization(instance, output_key(flow))
    if output is None:
        return SkipReason(f"{flow}/output has not been materialized yet")
    report = latest_materialization(instance, flow_report_key(flow))
    if report is not None and report.storage_id > output.storage_id:
        return SkipReason(f"{flow}/flow_report is newer than the latest {flow}/output materialization")
    writer = instance.get_run_by_id(output.run_id)
    if writer is not None and not writer.is_finished:
        # The run may redraw the report itself (F_output_job does); decide once it has ended.
        return SkipReason(f"run {output.run_id} that materialized {flow}/output is still in progress")
    return RunRequest(
        run_key=f"{flow}_flow_report_after_{output.storage_id}",
        asset_selection=[flow_report_key(flow)],
        tags={FLOW_TAG: flow, REDRAW_TAG: str(output.storage_id)},
    )


def build_flow_report_sensor(flow: FlowConfig) -> SensorDefinition:
    """`F_flow_report_sensor`, running by default (see the module's docstring)."""
    name = flow.name

    @sensor(
        name=f"{name}_flow_report_sensor",
        asset_selection=[flow_report_key(name)],
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=REPORT_SENSOR_INTERVAL_S,
        description=(
            f"Redraws {name}/flow_report after {name}/output is materialized outside {output_job_name(name)} "
            "(a UI Materialize, a backfill): requests a run whenever the latest output materialization is newer "
            "than the latest report and its run has ended."
        ),
    )
    def flow_report_sensor(context: SensorEvaluationContext) -> RunRequest | SkipReason:
        return report_redraw(context.instance, name)

    return flow_report_sensor
