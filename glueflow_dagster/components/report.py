"""`F/flow_report`: the guide's chart and table over the flow's history as the instance records it.

The history is `monitoring.flow_history`, the same one every Output run's `flow_ratio` is computed
from, so the report and the runs agree; the drawing is `core/chart.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagster import DagsterInstance, MetadataValue

from glueflow_dagster.components.monitoring import flow_history
from glueflow_dagster.core.chart import FlowReport, chart_markdown, draw_flow_chart
from glueflow_dagster.core.chart_thumbnail import thumbnail_markdown
from glueflow_dagster.core.flow_accounting import InputRun, OutputRun, flow_slots, latest_ratio
from glueflow_dagster.core.storage import location_uri

REPORT_WINDOWS = 48  # a day of 30-minute Input windows per chart
# The chart shown in the UI is embedded in the materialization: a lower resolution keeps it small (~60 kB).
REPORT_DPI = 80


def history_from_instance(
    instance: DagsterInstance,
    flow: str,
    *,
    limit: int | None = None,
    current_run_id: str | None = None,
) -> tuple[list[InputRun], list[OutputRun]]:
    """The flow's Input and Output runs, oldest first, with their bytes: `monitoring.flow_history`, the same
    history every Output run's `flow_ratio` is computed from (so the report and the runs agree).

    `limit` keeps the latest Input runs only, and the Output runs since the first of them. A run still in
    progress (`current_run_id`, the one materializing `F/flow_report`) counts once it has materialized
    `F/output`, like every run that did, whatever job started it.
    """
    del current_run_id  # a materialization counts as soon as it is recorded, run finished or not
    return flow_history(instance, flow, input_limit=limit)


def default_png_path(instance: DagsterInstance, flow: str) -> Path:
    """`$DAGSTER_HOME/glueflow_reports/<flow>_flow_chart.png`."""
    return Path(instance.root_directory) / "glueflow_reports" / f"{flow}_flow_chart.png"


def build_flow_report(
    instance: DagsterInstance,
    flow: str,
    png_path: Path | str | None,
    *,
    period_s: float | None = None,
    limit: int | None = None,
    current_run_id: str | None = None,
    dpi: int = 110,
) -> FlowReport:
    """Read the history, cut it into Input windows (and the Output runs in no window: `flow_slots`) and draw
    the chart when `png_path` is given.

    `period_s=None` leaves the last window open: every Output run after the latest Input run
    counts towards it, whatever the schedule. Inside an asset, pass `current_run_id=context.run.run_id`
    so the run's own Output materialization is counted before the run has succeeded.
    """
    input_runs, output_runs = history_from_instance(instance, flow, limit=limit, current_run_id=current_run_id)
    slots = flow_slots(input_runs, output_runs, period_s)
    drawn = None
    if png_path is not None:
        title = f"{flow}: Input -> Output data flow"
        drawn = draw_flow_chart(slots, png_path, title, dpi=dpi)
    return FlowReport(flow, input_runs, output_runs, slots, drawn)


def current_flow_report(instance: DagsterInstance, flow: str, run_id: str) -> FlowReport:
    """The guide's chart and table, including the Output run `run_id` that is still finishing."""
    return build_flow_report(
        instance, flow, default_png_path(instance, flow), limit=REPORT_WINDOWS, current_run_id=run_id, dpi=REPORT_DPI
    )


def report_metadata(
    report: FlowReport, *, chart_png: bytes | None = None, chart_uri: str | None = None
) -> dict[str, Any]:
    """Materialization metadata of `F/flow_report`: the PNG's path, the table and the totals; with
    `chart_png` the chart itself (`chart`, a markdown image) and with `chart_uri` where it is stored."""
    figures = report.json
    metadata: dict[str, Any] = {
        # First, and short enough for Dagster to render in place on the asset's overview: the chart at a glance.
        "flow_chart": MetadataValue.md(thumbnail_markdown(report.windows)),
        # The ratio second: at 1,366 px Dagster's metadata column cuts a wide table's last column off.
        "windows": MetadataValue.md(report.ui_markdown),
        "window_count": len(report.windows),
        "total_bytes_written": figures["total_bytes_written"],
        "total_bytes_read": figures["total_bytes_read"],
    }
    if report.png_path is not None:
        metadata["png_path"] = MetadataValue.path(str(report.png_path))
    latest = latest_ratio(report.windows)
    if latest is not None:
        metadata["latest_flow_ratio"] = round(latest, 4)
    if chart_png is not None:
        metadata["chart"] = MetadataValue.md(chart_markdown(chart_png))
        metadata["chart_bytes"] = len(chart_png)
    if chart_uri is not None:
        metadata["dagster/uri"] = location_uri(chart_uri)
    return metadata
