"""The guide's two charts as one PNG, and the same windows as a markdown table and JSON.

(a) bytes written by Input runs (red) and bytes read by Output runs (brown) on one UTC timeline,
(b) the ratio per Input trigger window, with the balanced value 1.0 dashed.

The drawing and the tables are plain (matplotlib's Agg canvas, no display, no pyplot state);
`history_from_instance`, `build_flow_report` and `report_metadata` read a Dagster instance and so
import Dagster, lazily: this is the shell side.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from glueflow_dagster.flow_accounting import (
    InputRun,
    OutputRun,
    Window,
    windows,
)

if TYPE_CHECKING:
    from dagster import DagsterInstance

# The guide's colours: the Input job in red, the Output job in brown.
INPUT_COLOUR = "#d62728"
OUTPUT_COLOUR = "#8c564b"
RATIO_COLOUR = "#1f77b4"
# Runs shorter than this share of the timeline are widened so they stay visible.
_MIN_BAR_SHARE = 0.006
# More bars than this and the per-bar value labels are left out (they would overlap).
_MAX_LABELLED_BARS = 24
_DAY_S = 86_400.0
# Value labels on a white box, so the dashed 1.0 line or a neighbouring bar never runs through them.
_LABEL_BOX = {"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.85}


def iso(timestamp_s: float) -> str:
    """UTC ISO-8601 to the second, e.g. `2024-05-01T12:00:00+00:00`."""
    return datetime.fromtimestamp(timestamp_s, tz=UTC).isoformat(timespec="seconds")


# --- tables ---------------------------------------------------------------------------------------


def windows_markdown(window_list: Sequence[Window]) -> str:
    """A markdown table, one row per Input window, oldest first."""
    lines = [
        "| window start (UTC) | input bytes written | output bytes read | ratio |",
        "|---|---:|---:|---:|",
    ]
    for window in window_list:
        ratio = "n/a" if window.ratio is None else f"{window.ratio:.2f}"
        lines.append(
            f"| {iso(window.start_s)} | {window.input_bytes_written:,} | {window.output_bytes_read:,} | {ratio} |"
        )
    return "\n".join(lines)


def windows_json(window_list: Sequence[Window]) -> dict[str, Any]:
    """`{"windows": [{start, input_bytes_written, output_bytes_read, ratio}], totals}`.

    `ratio` is None (JSON null) where it is undefined.
    """
    return {
        "windows": [
            {
                "start": iso(window.start_s),
                "input_bytes_written": int(window.input_bytes_written),
                "output_bytes_read": int(window.output_bytes_read),
                "ratio": None if window.ratio is None else float(window.ratio),
            }
            for window in window_list
        ],
        "total_bytes_written": sum(int(window.input_bytes_written) for window in window_list),
        "total_bytes_read": sum(int(window.output_bytes_read) for window in window_list),
    }


# --- the chart ------------------------------------------------------------------------------------


def _byte_unit(largest: float) -> tuple[float, str]:
    for factor, name in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if largest >= factor:
            return factor, name
    return 1.0, "bytes"


def _time_format(span_s: float) -> str:
    """Tick labels: clock time to the second for short histories, with the day for long ones."""
    if span_s <= 600:
        return "%H:%M:%S"
    if span_s <= 2 * _DAY_S:
        return "%H:%M"
    return "%m-%d %H:%M"


def _day_range(first_s: float, last_s: float) -> str:
    first_day, last_day = (datetime.fromtimestamp(t, tz=UTC).date().isoformat() for t in (first_s, last_s))
    return first_day if first_day == last_day else f"{first_day} to {last_day}"


def _num(timestamp_s: float) -> float:
    """Matplotlib's date number (days since 1970-01-01 UTC)."""
    return timestamp_s / _DAY_S


def draw_flow_chart(
    window_list: Sequence[Window],
    input_runs: Sequence[InputRun],
    output_runs: Sequence[OutputRun],
    png_path: Path | str,
    title: str,
) -> Path:
    """Draw the two panels into `png_path` (folders created); returns the path."""
    import matplotlib.dates as mdates
    from matplotlib.colors import to_rgba
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(11, 7), dpi=110, layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    fig.suptitle(title, fontsize=13, fontweight="bold")

    times = [t for run in (*input_runs, *output_runs) for t in (run.start_s, run.end_s)]
    times += [w.start_s for w in window_list] + [w.end_s for w in window_list if w.end_s is not None]
    if not times:
        for ax in (top, bottom):
            ax.text(
                0.5,
                0.5,
                "no successful Input or Output runs yet",
                ha="center",
                va="center",
                transform=ax.transAxes,
                fontsize=12,
                color="grey",
            )
            ax.set_yticks([])
        fig.savefig(png_path, format="png")
        return png_path

    first, last = min(times), max(times)
    span = max(last - first, 60.0)
    min_width = span * _MIN_BAR_SHARE
    largest = max([r.bytes_written for r in input_runs] + [r.bytes_read for r in output_runs] + [1])
    factor, unit = _byte_unit(largest)
    label_bars = len(input_runs) + len(output_runs) <= _MAX_LABELLED_BARS

    # (a) bytes per run, each bar spanning the run's start..end (widened when too short to see).
    # Input bars on top: where a long Output run overlaps the next Input run, the red stays visible.
    for runs, colour, label, value_of, layer in (
        (input_runs, INPUT_COLOUR, "bytes written by Input runs", lambda r: r.bytes_written, 3),
        (output_runs, OUTPUT_COLOUR, "bytes read by Output runs", lambda r: r.bytes_read, 2),
    ):
        if not runs:
            continue
        starts = [_num(r.start_s) for r in runs]
        widths = [max(r.end_s - r.start_s, min_width) / _DAY_S for r in runs]
        heights = [value_of(r) / factor for r in runs]
        bars = top.bar(
            starts,
            heights,
            width=widths,
            align="edge",
            color=to_rgba(colour, 0.55),  # translucent fill, full-colour outline
            edgecolor=colour,
            linewidth=1.5,
            label=label,
            zorder=layer,
        )
        if label_bars:
            labels = [f"{h:,.1f}" for h in heights]
            top.bar_label(bars, labels=labels, fontsize=8, color=colour, padding=2, bbox=_LABEL_BOX, zorder=layer + 2)
    top.set_ylabel(f"bytes ({unit})")
    top.set_title("(a) bytes written by Input runs and bytes read by Output runs", loc="left", fontsize=10)
    top.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=2, fontsize=9, frameon=False)
    top.margins(y=0.15)
    top.set_ylim(bottom=0)

    # (b) the ratio per Input window, drawn across the window.
    end_of_open = last if last > first else first + span
    for window in window_list:
        end = window.end_s if window.end_s is not None else max(end_of_open, window.start_s + min_width)
        left, width = _num(window.start_s), (end - window.start_s) / _DAY_S
        if window.ratio is None:
            bottom.text(left + width / 2, 0.05, "n/a", ha="center", va="bottom", fontsize=9, color="grey")
            continue
        bars = bottom.bar(
            [left],
            [window.ratio],
            width=[width],
            align="edge",
            color=RATIO_COLOUR,
            alpha=0.35,
            edgecolor=RATIO_COLOUR,
            linewidth=1.2,
        )
        if len(window_list) <= _MAX_LABELLED_BARS:
            bottom.bar_label(bars, labels=[f"{window.ratio:.2f}"], fontsize=9, padding=3, bbox=_LABEL_BOX, zorder=5)
    for window in window_list:
        for ax in (top, bottom):
            ax.axvline(_num(window.start_s), color="grey", linestyle=":", linewidth=0.8)
    bottom.axhline(1.0, color="black", linestyle="--", linewidth=1.0, label="1.0: read as much as written")
    bottom.set_ylabel("output read / input written")
    bottom.set_title("(b) flow ratio per Input trigger window", loc="left", fontsize=10)
    bottom.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=9, frameon=False)
    bottom.set_ylim(0, max([w.ratio for w in window_list if w.ratio is not None] + [1.0]) * 1.25)
    bottom.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:.1f}"))

    bottom.xaxis.set_major_locator(mdates.AutoDateLocator(tz=UTC, minticks=4, maxticks=10))
    bottom.xaxis.set_major_formatter(mdates.DateFormatter(_time_format(span), tz=UTC))
    bottom.set_xlabel(f"time (UTC, {_day_range(first, last)})")
    pad = span * 0.03 / _DAY_S
    bottom.set_xlim(_num(first) - pad, _num(last + min_width) + pad)
    for ax in (top, bottom):
        ax.grid(axis="y", alpha=0.3)
    fig.savefig(png_path, format="png")
    return png_path


# --- Dagster side ---------------------------------------------------------------------------------


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
    from glueflow_dagster.monitoring import flow_history

    del current_run_id  # a materialization counts as soon as it is recorded, run finished or not
    return flow_history(instance, flow, input_limit=limit)


@dataclass(frozen=True)
class FlowReport:
    flow: str
    input_runs: list[InputRun]
    output_runs: list[OutputRun]
    windows: list[Window]
    png_path: Path | None

    @property
    def markdown(self) -> str:
        return windows_markdown(self.windows)

    @property
    def json(self) -> dict[str, Any]:
        return windows_json(self.windows)


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
) -> FlowReport:
    """Read the history, cut it into Input windows and draw the chart when `png_path` is given.

    `period_s=None` leaves the last window open: every Output run after the latest Input run
    counts towards it, whatever the schedule. Inside an asset, pass `current_run_id=context.run.run_id`
    so the run's own Output materialization is counted before the run has succeeded.
    """
    input_runs, output_runs = history_from_instance(instance, flow, limit=limit, current_run_id=current_run_id)
    window_list = windows(input_runs, output_runs, period_s)
    drawn = None
    if png_path is not None:
        drawn = draw_flow_chart(window_list, input_runs, output_runs, png_path, f"{flow}: Input -> Output data flow")
    return FlowReport(flow, input_runs, output_runs, window_list, drawn)


def report_metadata(report: FlowReport) -> dict[str, Any]:
    """Materialization metadata of `F/flow_report`: the PNG's path, the table and the totals."""
    from dagster import MetadataValue

    figures = report.json
    metadata: dict[str, Any] = {
        "windows": MetadataValue.md(report.markdown),
        "window_count": len(report.windows),
        "total_bytes_written": figures["total_bytes_written"],
        "total_bytes_read": figures["total_bytes_read"],
    }
    if report.png_path is not None:
        metadata["png_path"] = MetadataValue.path(str(report.png_path))
    latest = next((w.ratio for w in reversed(report.windows) if w.ratio is not None), None)
    if latest is not None:
        metadata["latest_flow_ratio"] = round(latest, 4)
    return metadata


def report_command(
    instance: DagsterInstance,
    flow_name: str,
    json_out: bool,
    png: Path | None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """`glueflow report [--flow F] [--json] [--png FILE]`: the table (or JSON) on stdout, the PNG if asked."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    try:
        report = build_flow_report(instance, flow_name, png)
    except OSError as err:
        print(f"glueflow: {png}: cannot write the chart ({err.strerror or err})", file=stderr)
        return 2
    if json_out:
        print(json.dumps(report.json, indent=2), file=stdout)
    else:
        print(report.markdown, file=stdout)
    if not report.windows:
        print(f"glueflow: no successful {flow_name}_input_job run in {instance.root_directory}", file=stderr)
    if report.png_path is not None:
        print(f"chart written to {report.png_path}", file=stderr)
    return 0
