"""Per-run data-flow figures for `F/output`, read from the instance's history (the Dagster side).

The arithmetic lives in flow_accounting.py, flow_ratio.py and checks.py; this module only fetches
what they need: the Input run of this run's window, earlier Output runs, the read state, backlogs.
"""

from dataclasses import dataclass
from typing import Any

from dagster import AssetKey, AssetRecordsFilter, DagsterEventType, DagsterInstance, MetadataValue, RunsFilter

from glueflow_dagster.components.jobs import output_key, staging_key
from glueflow_dagster.core.bookmarks import Bookmark
from glueflow_dagster.core.flow_accounting import (
    BYTES_READ_BY_INPUT_RUN_KEY,
    InputRun,
    OutputRun,
    account_reads,
    bytes_by_input_run,
    parse_bytes_by_input_run,
    windows,
)
from glueflow_dagster.core.flow_ratio import NOT_APPLICABLE
from glueflow_dagster.core.storage import ObjectInfo

READ_STATE_KEY = "read_state"
# Text entry recorded instead of `flow_ratio` when the run's window has nothing to compare (n/a), so the
# metadata says why there is no ratio and the numeric `flow_ratio` plot gets no point.
FLOW_RATIO_NOTE_KEY = "flow_ratio_note"
# Input runs read back when placing one Output run in its window: the window is always among the latest.
WINDOW_LOOKBACK = 20


@dataclass(frozen=True)
class RunClock:
    run_id: str
    start_s: float


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


# Materializations read per query when paging through a flow's whole history.
_PAGE = 500


def _materializations(instance: DagsterInstance, key: AssetKey, *, limit: int | None, after_s: float | None) -> list:
    """Materialization records of `key`, newest first: the latest `limit`, or all after `after_s`."""
    records_filter = AssetRecordsFilter(asset_key=key, after_timestamp=after_s)
    if limit is not None:
        return list(instance.fetch_materializations(records_filter, limit=limit).records)
    found: list = []
    cursor = None
    while True:
        page = instance.fetch_materializations(records_filter, limit=_PAGE, cursor=cursor)
        found += page.records
        if not page.has_more:
            return found
        cursor = page.cursor


def _run_spans(instance: DagsterInstance, run_ids: list[str]) -> dict[str, tuple[float, float]]:
    """Start and end (the last update while still running) of each run, in seconds."""
    spans: dict[str, tuple[float, float]] = {}
    for chunk in range(0, len(run_ids), _PAGE):
        for record in instance.get_run_records(RunsFilter(run_ids=run_ids[chunk : chunk + _PAGE])):
            start = float(record.start_time or record.create_timestamp.timestamp())
            end = float(record.end_time or record.update_timestamp.timestamp())
            spans[record.dagster_run.run_id] = (start, max(end, start))
    return spans


def flow_history(
    instance: DagsterInstance, flow: str, *, input_limit: int | None = None
) -> tuple[list[InputRun], list[OutputRun]]:
    """The flow's Input and Output runs, oldest first: every run that materialized `F/staging` (an Input run)
    or `F/output` (an Output run), whatever job started it: the flow's jobs, a UI "Materialize"
    (`__ASSET_JOB`), a backfill or a re-execution. A materialization is the commit, so it is what counts.

    `input_limit` keeps the latest Input runs only, and the Output runs materialized since the first of them
    started. The one history read by every run's `flow_ratio` and by the report (`windows` cuts it).
    """
    staged = _materializations(instance, staging_key(flow), limit=input_limit, after_s=None)
    input_ids = list(dict.fromkeys(r.run_id for r in staged))
    spans = _run_spans(instance, input_ids)
    input_runs: list[InputRun] = []
    for record in staged:
        run_id = record.run_id
        if run_id not in spans or any(run.run_id == run_id for run in input_runs):
            continue
        metadata = _values(record)
        start, end = spans[run_id]
        input_runs.append(
            InputRun(run_id, start, min(end, max(float(record.timestamp), start)), _int(metadata, "bytes_written"))
        )
    after = min((run.start_s for run in input_runs), default=None) if input_limit is not None else None
    if input_limit is not None and not input_runs:
        return [], []
    outputs = _materializations(instance, output_key(flow), limit=None, after_s=after)
    spans = _run_spans(instance, list(dict.fromkeys(r.run_id for r in outputs)))
    output_runs: list[OutputRun] = []
    for record in outputs:
        run_id = record.run_id
        if run_id not in spans or any(run.run_id == run_id for run in output_runs):
            continue
        metadata = _values(record)
        window = metadata.get("input_run_id")
        output_runs.append(
            OutputRun(
                run_id,
                *spans[run_id],
                _int(metadata, "bytes_read"),
                parse_bytes_by_input_run(metadata.get(BYTES_READ_BY_INPUT_RUN_KEY)),
                window_input_run_id=str(window) if window else None,
            )
        )
    input_runs.sort(key=lambda run: (run.start_s, run.run_id))
    output_runs.sort(key=lambda run: (run.start_s, run.run_id))
    return input_runs, output_runs


def _values(record: Any) -> dict[str, Any]:
    materialization = record.asset_materialization
    return {} if materialization is None else {k: v.value for k, v in materialization.metadata.items()}


def _int(metadata: dict[str, Any], key: str) -> int:
    value = metadata.get(key, 0)
    return int(value) if isinstance(value, int | float) else 0


def window_of(input_runs: list[InputRun], start_s: float) -> InputRun | None:
    """The Input run whose trigger window a run starting at `start_s` falls in: the latest one that started
    at or before it (of those that had committed then)."""
    started = [run for run in input_runs if run.start_s <= start_s]
    return max(started, key=lambda run: (run.start_s, run.run_id), default=None)


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
    bytes, the backlog it leaves, its lag, and the bytes it read from each producing Input run.

    A window with nothing to compare (nothing written or nothing read in it), or no window at all, has no
    ratio (n/a): `flow_ratio` is left out, so its plot gets no point, and `flow_ratio_note` says why.

    The window is the one the report shows (`flow_history` + `windows`), however the run started: the
    tag `glueflow/input_run_id` (`tagged_input_run`) names the Input run a sensor followed, which is not
    always the window the run started in, so it does not choose the window.
    """
    del tagged_input_run  # kept in the signature for callers; the window is decided by start time alone
    earlier = _latest_output_metadata(instance, flow, 1)
    read_before = Bookmark.from_dict(earlier[0].get(READ_STATE_KEY) if earlier else None)
    accounting = account_reads(read_before, manifest, staging_after, now_ms=now_ms, max_band_ms=max_band_ms)
    figures: dict[str, Any] = {**accounting.metadata()}
    input_runs, output_runs = flow_history(instance, flow, input_limit=WINDOW_LOOKBACK)
    window_input = window_of(input_runs, run.start_s)
    if window_input is not None:
        this_run = OutputRun(run.run_id, run.start_s, run.start_s, bytes_read, window_input_run_id=window_input.run_id)
        others = [r for r in output_runs if r.run_id != run.run_id]
        [window] = [
            w for w in windows(input_runs, [*others, this_run], period_s=None) if w.input_run_id == window_input.run_id
        ]
        if window.ratio is not None:
            figures["flow_ratio"] = round(window.ratio, 4)
        else:
            figures[FLOW_RATIO_NOTE_KEY] = (
                f"{NOT_APPLICABLE}: in this Input window {window.input_bytes_written:,} bytes were written and "
                f"{window.output_bytes_read:,} read, nothing to compare"
            )
        figures["input_bytes_written"] = window_input.bytes_written
        figures["input_run_id"] = window_input.run_id
        figures["lag_s"] = round(max(run.start_s - window_input.end_s, 0.0), 3)
    else:
        figures[FLOW_RATIO_NOTE_KEY] = f"{NOT_APPLICABLE}: no Input run had started before this run, so no window"
    figures[BYTES_READ_BY_INPUT_RUN_KEY] = MetadataValue.json(bytes_by_input_run(manifest))
    figures[READ_STATE_KEY] = MetadataValue.json(accounting.read_state.to_dict())
    return figures


def earlier_backlogs(instance: DagsterInstance, flow: str, count: int) -> list[int]:
    """`backlog_bytes` of the latest `count` Output materializations, oldest first."""
    latest = _latest_output_metadata(instance, flow, count)
    return [int(m.get("backlog_bytes", 0)) for m in reversed(latest)]
