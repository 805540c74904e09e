"""Per-run data-flow figures for `F/output`, read from the instance's history (the Dagster side).

The arithmetic lives in flow_accounting.py, flow_ratio.py and checks.py; this module only fetches
what they need: the Input run of this run's window, earlier Output runs, the read state, backlogs.
"""

from dataclasses import dataclass
from typing import Any

from dagster import AssetKey, DagsterEventType, DagsterInstance, DagsterRunStatus, MetadataValue, RunsFilter

from glueflow_dagster.bookmarks import Bookmark
from glueflow_dagster.flow_accounting import (
    BYTES_READ_BY_INPUT_RUN_KEY,
    InputRun,
    OutputRun,
    account_reads,
    bytes_by_input_run,
    windows,
)
from glueflow_dagster.jobs import input_job_name, output_job_name, output_key, staging_key
from glueflow_dagster.storage import ObjectInfo

READ_STATE_KEY = "read_state"
_RECENT = 20


@dataclass(frozen=True)
class RunClock:
    run_id: str
    start_s: float


def latest_metadata(instance: DagsterInstance, key: AssetKey) -> dict[str, Any]:
    """Metadata of the asset's latest materialization, as plain values ({} if never materialized)."""
    records = instance.fetch_materializations(key, limit=1).records
    if not records or records[0].asset_materialization is None:
        return {}
    return {name: entry.value for name, entry in records[0].asset_materialization.metadata.items()}


def run_materialization_metadata(instance: DagsterInstance, run_id: str, key: AssetKey) -> dict[str, Any]:
    """Metadata that run `run_id` recorded for `key` ({} if it recorded none)."""
    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION).records
    for record in records:
        materialization = record.event_log_entry.asset_materialization
        if materialization is not None and materialization.asset_key == key:
            return {name: entry.value for name, entry in materialization.metadata.items()}
    return {}


def _latest_output_metadata(instance: DagsterInstance, flow: str, count: int) -> list[dict[str, Any]]:
    records = instance.fetch_materializations(output_key(flow), limit=count).records
    return [
        {name: entry.value for name, entry in r.asset_materialization.metadata.items()}
        for r in records
        if r.asset_materialization is not None
    ]


def window_input_run(instance: DagsterInstance, flow: str, run: RunClock, tagged: str | None) -> InputRun | None:
    """The Input run whose trigger window this Output run started in: the one that triggered it, else
    the latest successful Input run that started before it."""
    records = instance.get_run_records(
        RunsFilter(job_name=input_job_name(flow), statuses=[DagsterRunStatus.SUCCESS]), limit=_RECENT
    )
    chosen = next((r for r in records if r.dagster_run.run_id == tagged), None)
    if chosen is None:
        started = [r for r in records if (r.start_time or 0.0) <= run.start_s]
        chosen = max(started, key=lambda r: r.start_time or 0.0, default=None)
    if chosen is None:
        return None
    written = int(
        run_materialization_metadata(instance, chosen.dagster_run.run_id, staging_key(flow)).get("bytes_written", 0)
    )
    start = float(chosen.start_time or 0.0)
    return InputRun(chosen.dagster_run.run_id, start, float(chosen.end_time or start), written)


def output_flow_figures(
    instance: DagsterInstance,
    flow: str,
    run: RunClock,
    tagged_input_run: str | None,
    bytes_read: int,
    manifest: tuple[ObjectInfo, ...],
    staging_after: list[ObjectInfo],
    *,
    now_ms: int,
    max_band_ms: int,
) -> dict[str, Any]:
    """The guide's figures for one Output run: flow_ratio over its Input window, new and reprocessed
    bytes, the backlog it leaves, its lag, and the bytes it read from each producing Input run."""
    earlier = _latest_output_metadata(instance, flow, 1)
    read_before = Bookmark.from_dict(earlier[0].get(READ_STATE_KEY) if earlier else None)
    accounting = account_reads(read_before, manifest, staging_after, now_ms=now_ms, max_band_ms=max_band_ms)
    figures: dict[str, Any] = {**accounting.metadata()}
    window_input = window_input_run(instance, flow, run, tagged_input_run)
    if window_input is not None:
        earlier_outputs = [
            OutputRun(
                r.dagster_run.run_id,
                float(r.start_time or 0.0),
                float(r.end_time or 0.0),
                int(
                    run_materialization_metadata(instance, r.dagster_run.run_id, output_key(flow)).get("bytes_read", 0)
                ),
            )
            for r in instance.get_run_records(
                RunsFilter(job_name=output_job_name(flow), statuses=[DagsterRunStatus.SUCCESS]), limit=_RECENT
            )
            if (r.start_time or 0.0) >= window_input.start_s
        ]
        this_run = OutputRun(run.run_id, run.start_s, run.start_s, bytes_read)
        [window] = windows([window_input], [*earlier_outputs, this_run], period_s=None)
        if window.ratio is not None:
            figures["flow_ratio"] = round(window.ratio, 4)
        figures["input_bytes_written"] = window_input.bytes_written
        figures["input_run_id"] = window_input.run_id
        figures["lag_s"] = round(max(run.start_s - window_input.end_s, 0.0), 3)
    figures[BYTES_READ_BY_INPUT_RUN_KEY] = MetadataValue.json(bytes_by_input_run(manifest))
    figures[READ_STATE_KEY] = MetadataValue.json(accounting.read_state.to_dict())
    return figures


def earlier_backlogs(instance: DagsterInstance, flow: str, count: int) -> list[int]:
    """`backlog_bytes` of the latest `count` Output materializations, oldest first."""
    latest = _latest_output_metadata(instance, flow, count)
    return [int(m.get("backlog_bytes", 0)) for m in reversed(latest)]


REPORT_WINDOWS = 48  # a day of 30-minute Input windows per chart


def current_flow_report(instance: DagsterInstance, flow: str, run_id: str) -> Any:
    """The guide's chart and table, including the Output run `run_id` that is still finishing."""
    from glueflow_dagster.report import build_flow_report, default_png_path

    return build_flow_report(
        instance, flow, default_png_path(instance, flow), limit=REPORT_WINDOWS, current_run_id=run_id
    )
