"""The guide's two charts as one PNG, and the same windows as a markdown table and JSON.

(a) bytes written by Input runs (red) and bytes read by Output runs (brown), per Input trigger window,
(b) the ratio per Input trigger window, with the balanced value 1.0 dashed.
The x axis is indexed by window (one slot each, whatever its length), so idle time between runs never
squeezes the bars and every window stays readable.

Plain matplotlib (the Agg canvas, no display, no pyplot state) over flow_accounting's windows; who reads
the history is the caller's business (`components/report.py` reads a Dagster instance, `glueflow
simulate` replays the guide's timeline).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from glueflow_dagster.core.flow_accounting import InputRun, OutputRun, Window, assign_windows

# The guide's colours: the Input job in red, the Output job in brown.
INPUT_COLOUR = "#d62728"
OUTPUT_COLOUR = "#8c564b"
RATIO_COLOUR = "#1f77b4"
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


@dataclass(frozen=True)
class _Slot:
    """One x position of the chart: an Input window, or the Output runs that fall in no window."""

    tick: str
    input_bytes: int | None
    outputs: list[OutputRun]
    ratio: float | None
    window: bool = True


def _label_style(labels: Sequence[str], bar_px: float, dpi: int, fontsize: int = 8) -> tuple[int, int] | None:
    """(rotation, font size) for value labels that each fit above their own bar, so neighbours never overlap:
    horizontal when the widest label fits the bar's width, else vertical when a line of text does, else
    none (too many bars to label; the bars and the table still show every value)."""
    char_px = 0.62 * fontsize * dpi / 72  # DejaVu Sans digits are about 0.62 em wide
    if max(len(label) for label in labels) * char_px <= bar_px:
        return 0, fontsize
    small = fontsize - 1
    if 1.3 * small * dpi / 72 <= bar_px:  # a line of text is about 1.3 em high
        return 90, small
    return None


def _short(value: float) -> str:
    """A compact value label: 3 significant digits (`120`, `80.5`, `1.25`)."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def draw_flow_chart(
    window_list: Sequence[Window],
    input_runs: Sequence[InputRun],
    output_runs: Sequence[OutputRun],
    png_path: Path | str,
    title: str,
    *,
    dpi: int = 110,
) -> Path:
    """Draw the two panels into `png_path` (folders created); returns the path."""
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    png_path.write_bytes(render_flow_chart(window_list, input_runs, output_runs, title, dpi=dpi))
    return png_path


def render_flow_chart(
    window_list: Sequence[Window],
    input_runs: Sequence[InputRun],
    output_runs: Sequence[OutputRun],
    title: str,
    *,
    dpi: int = 110,
) -> bytes:
    """The chart as PNG bytes (see `flow_figure`)."""
    return _png(flow_figure(window_list, input_runs, output_runs, title, dpi=dpi))


def flow_figure(
    window_list: Sequence[Window],
    input_runs: Sequence[InputRun],
    output_runs: Sequence[OutputRun],
    title: str,
    *,
    dpi: int = 110,
) -> Any:
    """The chart as a matplotlib Figure (Agg, no pyplot state), indexed by Input window.

    Each window gets the same width on the x axis whatever its length, so idle hours between runs never
    squeeze the bars: in panel (a) the window's Input run (red) and then each Output run counted in that
    window (brown, in start order), side by side; in panel (b) the window's ratio. Value labels sit
    above their own bar, rotated when the bars are narrow, and are left out when there are too many to
    read, so they never overlap.
    """

    from matplotlib.colors import to_rgba
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    fig = Figure(figsize=(11, 7), dpi=dpi, layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    fig.suptitle(title, fontsize=13, fontweight="bold")
    if not window_list:
        for ax in (top, bottom):
            ax.text(
                0.5,
                0.5,
                "no successful Input runs yet",
                ha="center",
                va="center",
                transform=ax.transAxes,
                fontsize=12,
                color="grey",
            )
            ax.set_yticks([])
        return fig

    windows_sorted = sorted(window_list, key=lambda w: (w.start_s, w.input_run_id))
    by_id = {run.run_id: run for run in input_runs}
    ordered_outputs = sorted(output_runs, key=lambda run: (run.start_s, run.run_id))
    members: list[list[OutputRun]] = [[] for _ in windows_sorted]
    inputs_in_slots = [
        by_id.get(w.input_run_id, InputRun(w.input_run_id, w.start_s, w.start_s, w.input_bytes_written))
        for w in windows_sorted
    ]
    # The windows' own assignment (recorded window, else start time). Output runs in no window are drawn in
    # extra slots before the first window or after the last one: nothing is left out silently.
    last = windows_sorted[-1]
    period = None if last.end_s is None else max(last.end_s - last.start_s, 1e-6)
    before: list[OutputRun] = []
    after: list[OutputRun] = []
    for run, index in zip(ordered_outputs, assign_windows(inputs_in_slots, ordered_outputs, period), strict=True):
        if index is not None:
            members[index].append(run)
        else:
            (before if run.start_s < windows_sorted[0].start_s else after).append(run)
    span = last.start_s - windows_sorted[0].start_s
    slots: list[_Slot] = [
        _Slot(datetime.fromtimestamp(w.start_s, tz=UTC).strftime(_time_format(span)), w.input_bytes_written, g, w.ratio)
        for w, g in zip(windows_sorted, members, strict=True)
    ]
    if before:
        slots.insert(0, _Slot("before", None, before, None, window=False))
    if after:
        slots.append(_Slot("no window", None, after, None, window=False))

    largest = max([w.input_bytes_written for w in windows_sorted] + [r.bytes_read for r in ordered_outputs] + [1])
    factor, unit = _byte_unit(largest)
    group_width = 0.84
    widest_group = max(len(slot.outputs) + (slot.input_bytes is not None) for slot in slots)
    bar_width = group_width / max(widest_group, 2)
    # Pixels per slot: the axes take about 90% of the figure's width.
    slot_px = fig.get_figwidth() * dpi * 0.9 / (len(slots) + 0.2)

    xs_in: list[float] = []
    h_in: list[float] = []
    xs_out: list[float] = []
    h_out: list[float] = []
    for index, slot in enumerate(slots):
        left = index - group_width / 2
        position = 0
        if slot.input_bytes is not None:
            xs_in.append(left + bar_width / 2)
            h_in.append(slot.input_bytes / factor)
            position = 1
        for offset, run in enumerate(slot.outputs, start=position):
            xs_out.append(left + bar_width * (offset + 0.5))
            h_out.append(run.bytes_read / factor)
    for xs, heights, colour, label, layer in (
        (xs_in, h_in, INPUT_COLOUR, "bytes written by the window's Input run", 3),
        (xs_out, h_out, OUTPUT_COLOUR, "bytes read by each Output run started in the window", 2),
    ):
        if not xs:
            continue
        bars = top.bar(
            xs,
            heights,
            width=bar_width * 0.92,
            color=to_rgba(colour, 0.55),
            edgecolor=colour,
            linewidth=1.5,
            label=label,
            zorder=layer,
        )
        labels = [_short(h) for h in heights]
        style = _label_style(labels, bar_width * 0.92 * slot_px, dpi)
        if style is not None:
            top.bar_label(bars, labels=labels, fontsize=style[1], color=colour, padding=2, rotation=style[0])
    top.set_ylabel(f"bytes ({unit})")
    top.set_title(
        "(a) bytes written by Input runs and bytes read by Output runs, per Input window", loc="left", fontsize=10
    )
    top.legend(loc="lower right", bbox_to_anchor=(1.0, 1.06), ncols=2, fontsize=8, frameon=False)
    top.set_ylim(0, max(h_in + h_out + [1e-9]) * 1.3)

    for index, slot in enumerate(slots):
        if slot.window and slot.ratio is None:
            bottom.text(index, 0.05, "n/a", ha="center", va="bottom", fontsize=8, color="grey")
    shown = [(index, slot.ratio) for index, slot in enumerate(slots) if slot.ratio is not None]
    ratios = [ratio for _, ratio in shown]
    if shown:
        bars = bottom.bar(
            [i for i, _ in shown],
            ratios,
            width=0.6,
            color=RATIO_COLOUR,
            alpha=0.35,
            edgecolor=RATIO_COLOUR,
            linewidth=1.2,
            zorder=2,
        )
        labels = [f"{r:.2f}" for r in ratios]
        style = _label_style(labels, 0.6 * slot_px, dpi, fontsize=9)
        if style is not None:
            bottom.bar_label(
                bars, labels=labels, fontsize=style[1], padding=2, rotation=style[0], bbox=_LABEL_BOX, zorder=5
            )
    bottom.axhline(1.0, color="black", linestyle="--", linewidth=1.0, label="1.0: read as much as written", zorder=1)
    bottom.set_ylabel("output read / input written")
    bottom.set_title("(b) flow ratio per Input trigger window", loc="left", fontsize=10)
    bottom.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=9, frameon=False)
    bottom.set_ylim(0, max([*ratios, 1.0]) * 1.4)
    bottom.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:.1f}"))

    # One tick per slot (thinned to at most 16), labelled with the window's start time.
    step = max(1, -(-len(slots) // 16))
    ticks = list(range(0, len(slots), step))
    bottom.set_xticks(ticks)
    bottom.set_xticklabels(
        [slots[i].tick for i in ticks],
        rotation=30 if len(ticks) > 8 else 0,
        ha="right" if len(ticks) > 8 else "center",
        fontsize=8,
    )
    note = "; Output runs outside every window in their own slot" if before or after else ""
    bottom.set_xlabel(
        f"Input window start (UTC, {_day_range(windows_sorted[0].start_s, last.start_s)}), "
        f"one slot per window whatever its length{note}"
    )
    bottom.set_xlim(-0.6, len(slots) - 0.4)
    for boundary in range(1, len(slots)):
        for ax in (top, bottom):
            ax.axvline(boundary - 0.5, color="grey", linestyle=":", linewidth=0.8)
    for ax in (top, bottom):
        ax.grid(axis="y", alpha=0.3)
    return fig


def _png(fig: Any) -> bytes:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


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


def chart_markdown(png: bytes) -> str:
    """The chart as a markdown image with the PNG inline, which Dagster's UI shows on the materialization."""
    return f"![chart](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"
