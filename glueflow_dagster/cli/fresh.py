"""`glueflow demo --fresh`: start one flow over, with no history and no data.

Why: the demo continues where the last one stopped (new batches, the same bookmark, the same flow
accounting), so a second `glueflow demo --bookmarks disable` rereads everything earlier demos
staged and prints other numbers than the README. `--fresh` removes this flow's history from the
instance (its runs with their event logs, and its assets' materializations and observations, where
the committed bookmarks live) and every object under its input, staging and output locations. Other
flows in the same DAGSTER_HOME keep theirs. Works on any instance (SQLite or PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dagster import DagsterInstance, RunsFilter

from glueflow_dagster.components.jobs import (
    FLOW_TAG,
    bookmark_admin_job_name,
    flow_report_key,
    input_job_name,
    output_job_name,
    output_key,
    output_sensor_name,
    raw_input_key,
    staging_key,
)
from glueflow_dagster.components.resources import StorageResource
from glueflow_dagster.core.config import FlowConfig

_PAGE = 1000


@dataclass(frozen=True)
class FreshReport:
    runs_deleted: int
    objects_deleted: dict[str, int]  # location uri -> objects removed
    sensor_cursors_cleared: int = 0

    def lines(self) -> list[str]:
        data = ", ".join(f"{count:,} objects under {uri}" for uri, count in self.objects_deleted.items())
        return [f"fresh start: deleted {self.runs_deleted:,} runs and their history; {data}"]


def _flow_run_ids(instance: DagsterInstance, flow: FlowConfig) -> set[str]:
    """Every run of this flow: tagged with it, of its jobs, or having materialized one of its assets
    (a UI "Materialize" runs outside the flow's jobs)."""
    run_ids = set(instance.get_run_ids(RunsFilter(tags={FLOW_TAG: flow.name})))
    jobs = [input_job_name(flow.name), output_job_name(flow.name), bookmark_admin_job_name(flow.name)]
    for job in jobs:
        run_ids.update(instance.get_run_ids(RunsFilter(job_name=job)))
    for key in _asset_keys(flow):
        for fetch in (instance.fetch_materializations, instance.fetch_observations):
            cursor = None
            while True:
                page = fetch(key, limit=_PAGE, cursor=cursor)
                run_ids.update(record.run_id for record in page.records if record.run_id)
                if not page.has_more:
                    break
                cursor = page.cursor
    return run_ids


def _asset_keys(flow: FlowConfig) -> list:
    name = flow.name
    return [raw_input_key(name), staging_key(name), output_key(name), flow_report_key(name)]


def start_fresh(
    instance: DagsterInstance, flow: FlowConfig, *, progress: Callable[[str], None] = lambda _line: None
) -> FreshReport:
    """Delete the flow's runs, asset history and location objects; nothing of other flows."""
    run_ids = sorted(_flow_run_ids(instance, flow))
    progress(f"fresh: deleting {len(run_ids):,} runs of flow {flow.name} and its asset history")
    for run_id in run_ids:
        instance.delete_run(run_id)
    instance.wipe_assets(_asset_keys(flow))
    cleared = _clear_sensor_cursor(instance, flow)
    deleted: dict[str, int] = {}
    for location in (flow.input, flow.staging, flow.output):
        progress(f"fresh: deleting the objects under {location.uri}")
        storage = StorageResource().open(location.uri)
        # Everything, the quarantine (`_errors/`) and the Input job's raw batches included.
        deleted[location.uri] = storage.delete_prefix("") if storage.exists() else 0
    return FreshReport(len(run_ids), deleted, cleared)


def _clear_sensor_cursor(instance: DagsterInstance, flow: FlowConfig) -> int:
    """Forget what the daemon's F_output_sensor followed and planned from (its stored cursor names
    deleted runs and the wiped bookmark), so `dagster dev` afterwards starts over with the flow."""
    # Not in dagster's public API: the daemon's stored sensor state.
    from dagster._core.definitions.run_request import InstigatorType
    from dagster._core.scheduler.instigation import SensorInstigatorData

    cleared = 0
    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        data = state.instigator_data
        ours = state.instigator_name == output_sensor_name(flow.name)
        if ours and isinstance(data, SensorInstigatorData) and data.cursor is not None:
            instance.update_instigator_state(state.with_data(data._replace(cursor=None)))
            cleared += 1
    return cleared
