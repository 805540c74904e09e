"""The guide's two charts as one PNG, and the same windows as a markdown table and JSON.

(a) bytes written by Input runs (red) and bytes read by Output runs (brown), per Input trigger window,
(b) the ratio per Input trigger window, with the balanced value 1.0 dashed; a window with nothing to
compare (nothing written or nothing read) gets no bar, only "n/a".
The x axis is indexed by window (one slot each, whatever its length), so idle time between runs never
squeezes the bars and every window stays readable. Output runs that count in no window have a slot (and a
table row) of their own, labelled, so every byte of the totals is drawn and listed.

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

from glueflow_dagster.core.flow_accounting import (
    BEFORE_FIRST_WINDOW,
    InputRun,
    OutputRun,
    Slot,
    Window,
    total_bytes_read,
    total_bytes_written,
)
from glueflow_dagster.core.flow_ratio import NOT_APPLICABLE, flow_ratio

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


def _ratio_text(ratio: float | None) -> str:
    return NOT_APPLICABLE if ratio is None else f"{ratio:.2f}"


def slot_label(slot: Slot) -> str:
    """A row's first cell: the window's start, or where its Output runs are and how many there are."""
    if slot.window is not None:
        return iso(slot.window.start_s)
    count = len(slot.output_runs)
    return f"{slot.outside} ({count} Output run{'s' if count != 1 else ''})"


def flow_table_markdown(slots: Sequence[Slot], *, ratio_second: bool = False) -> str:
    """A markdown table, one row per slot (Input windows oldest first; Output runs outside every window in
    a labelled row), and a last row with the totals, which are the sums of the rows above.

    `ratio_second` puts the ratio right after the window's start (`F/flow_report`'s `windows` entry, so the
    figure that matters is never the column a narrow screen cuts off); `glueflow report` and `glueflow
    simulate` print the columns in the guide's order, ratio last."""
    header = ("window start (UTC)", "input bytes written", "output bytes read", "ratio")
    rows = [
        (
            slot_label(slot),
            f"{slot.input_bytes_written:,}" if slot.window is not None else "-",
            f"{slot.output_bytes_read:,}",
            _ratio_text(slot.ratio),
        )
        for slot in slots
    ]
    written, read = total_bytes_written(slots), total_bytes_read(slots)
    rows.append(("total", f"{written:,}", f"{read:,}", _ratio_text(flow_ratio(read, written))))
    order = (0, 3, 1, 2) if ratio_second else (0, 1, 2, 3)
    align = "|" + "|".join("---" if i == 0 else "---:" for i in order) + "|"
    lines = [f"| {' | '.join(cells[i] for i in order)} |" for cells in (header, *rows)]
    return "\n".join([lines[0], align, *lines[1:]])


def flow_table_json(slots: Sequence[Slot]) -> dict[str, Any]:
    """`{"windows": [{start, input_bytes_written, output_bytes_read, ratio}], "outside_windows": [{slot,
    output_runs, first_start, output_bytes_read}], total_bytes_written, total_bytes_read}`.

    `ratio` is None (JSON null) where it is undefined (n/a). The totals are the sums of both lists.
    """
    return {
        "windows": [
            {
                "start": iso(slot.window.start_s),
                "input_bytes_written": int(slot.input_bytes_written),
                "output_bytes_read": int(slot.output_bytes_read),
                "ratio": None if slot.ratio is None else float(slot.ratio),
            }
            for slot in slots
            if slot.window is not None
        ],
        "outside_windows": [
            {
                "slot": slot.outside,
                "output_runs": len(slot.output_runs),
                "first_start": iso(min(run.start_s for run in slot.output_runs)),
                "output_bytes_read": int(slot.output_bytes_read),
            }
            for slot in slots
            if slot.window is None
        ],
        "total_bytes_written": total_bytes_written(slots),
        "total_bytes_read": total_bytes_read(slots),
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


def draw_flow_chart(slots: Sequence[Slot], png_path: Path | str, title: str, *, dpi: int = 110) -> Path:
    """Draw the two panels into `png_path` (folders created); returns the path."""
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    png_path.write_bytes(render_flow_chart(slots, title, dpi=dpi))
    return png_path


# PNG text chunk holding the chart's figures: the markdown table the chart was drawn from.
PNG_TABLE_KEY = "Description"


def render_flow_chart(slots: Sequence[Slot], title: str, *, dpi: int = 110) -> bytes:
    """The chart as PNG bytes (see `flow_figure`), with its table in the PNG's `Description` text chunk, so
    a picture can be checked against the figures it claims to show (docs/simulate_*.png are)."""
    return _png(flow_figure(slots, title, dpi=dpi), {PNG_TABLE_KEY: flow_table_markdown(slots)})


def flow_figure(slots: Sequence[Slot], title: str, *, dpi: int = 110) -> Any:
    """The chart as a matplotlib Figure (Agg, no pyplot state), one x slot per `flow_slots` slot.

    Each window gets the same width on the x axis whatever its length, so idle hours between runs never
    squeeze the bars: in panel (a) the window's Input run (red) and then each Output run counted in that
    window (brown, in start order), side by side; in panel (b) the window's ratio, or "n/a" and no bar.
    Output runs in no window are drawn in their own slot ("before", "no window"). Value labels sit above
    their own bar, rotated when the bars are narrow, and are left out when there are too many to read, so
    they never overlap.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 7), dpi=dpi, layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    fig.suptitle(title, fontsize=13, fontweight="bold")
    if not slots:
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
    # Pixels per slot: the axes take about 90% of the figure's width.
    slot_px = fig.get_figwidth() * dpi * 0.9 / (len(slots) + 0.2)
    _draw_bytes_panel(top, slots, slot_px, dpi)
    _draw_ratio_panel(bottom, slots, slot_px, dpi)
    _draw_slot_axis(top, bottom, slots)
    return fig


# Share of a slot's width its bars take (the rest separates it from its neighbours).
_GROUP_WIDTH = 0.84


def _bytes_bars(slots: Sequence[Slot], factor: float, bar_width: float) -> tuple[list[float], ...]:
    """x and height of every Input bar and every Output bar: per slot, the Input run first, then its Output runs."""
    xs_in: list[float] = []
    h_in: list[float] = []
    xs_out: list[float] = []
    h_out: list[float] = []
    for index, slot in enumerate(slots):
        left = index - _GROUP_WIDTH / 2
        position = 0
        if slot.window is not None:
            xs_in.append(left + bar_width / 2)
            h_in.append(slot.window.input_bytes_written / factor)
            position = 1
        for offset, run in enumerate(slot.output_runs, start=position):
            xs_out.append(left + bar_width * (offset + 0.5))
            h_out.append(run.bytes_read / factor)
    return xs_in, h_in, xs_out, h_out


def _draw_bytes_panel(top: Any, slots: Sequence[Slot], slot_px: float, dpi: int) -> None:
    """Panel (a): per slot, the window's Input run (red) and each Output run counted there (brown)."""
    from matplotlib.colors import to_rgba

    largest = max(
        [slot.input_bytes_written for slot in slots] + [run.bytes_read for slot in slots for run in slot.output_runs]
    )
    factor, unit = _byte_unit(max(largest, 1))
    widest_group = max(len(slot.output_runs) + (slot.window is not None) for slot in slots)
    bar_width = _GROUP_WIDTH / max(widest_group, 2)
    xs_in, h_in, xs_out, h_out = _bytes_bars(slots, factor, bar_width)
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


def _draw_ratio_panel(bottom: Any, slots: Sequence[Slot], slot_px: float, dpi: int) -> None:
    """Panel (b): the window's ratio as a bar, or "n/a" and no bar when it has nothing to compare (and in
    the slots of Output runs outside every window)."""
    from matplotlib.ticker import FuncFormatter

    for index, slot in enumerate(slots):
        if slot.ratio is None:
            bottom.text(index, 0.05, NOT_APPLICABLE, ha="center", va="bottom", fontsize=8, color="grey")
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


def _slot_ticks(slots: Sequence[Slot]) -> list[str]:
    """Each slot's tick: the window's start time, "before" or "no window"."""
    starts = [slot.window.start_s for slot in slots if slot.window is not None]
    time_format = _time_format(starts[-1] - starts[0]) if starts else "%H:%M"
    return [
        datetime.fromtimestamp(slot.window.start_s, tz=UTC).strftime(time_format)
        if slot.window is not None
        else ("before" if slot.outside == BEFORE_FIRST_WINDOW else slot.outside)
        for slot in slots
    ]


def _draw_slot_axis(top: Any, bottom: Any, slots: Sequence[Slot]) -> None:
    """The shared x axis: one tick per slot (thinned to at most 16), dotted lines between slots."""
    labels = _slot_ticks(slots)
    step = max(1, -(-len(slots) // 16))
    ticks = list(range(0, len(slots), step))
    bottom.set_xticks(ticks)
    bottom.set_xticklabels(
        [labels[i] for i in ticks],
        rotation=30 if len(ticks) > 8 else 0,
        ha="right" if len(ticks) > 8 else "center",
        fontsize=8,
    )
    starts = [slot.window.start_s for slot in slots if slot.window is not None]
    days = f", {_day_range(starts[0], starts[-1])}" if starts else ""
    note = "; Output runs outside every window in their own slot" if len(starts) < len(slots) else ""
    bottom.set_xlabel(f"Input window start (UTC{days}), one slot per window whatever its length{note}")
    bottom.set_xlim(-0.6, len(slots) - 0.4)
    for boundary in range(1, len(slots)):
        for ax in (top, bottom):
            ax.axvline(boundary - 0.5, color="grey", linestyle=":", linewidth=0.8)
    for ax in (top, bottom):
        ax.grid(axis="y", alpha=0.3)


def _png(fig: Any, text: dict[str, str]) -> bytes:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata=text)
    return buffer.getvalue()


@dataclass(frozen=True)
class FlowReport:
    flow: str
    input_runs: list[InputRun]
    output_runs: list[OutputRun]
    slots: list[Slot]
    png_path: Path | None

    @property
    def windows(self) -> list[Window]:
        return [slot.window for slot in self.slots if slot.window is not None]

    @property
    def markdown(self) -> str:
        return flow_table_markdown(self.slots)

    @property
    def ui_markdown(self) -> str:
        """The table as `F/flow_report` shows it: the ratio second."""
        return flow_table_markdown(self.slots, ratio_second=True)

    @property
    def json(self) -> dict[str, Any]:
        return flow_table_json(self.slots)


def chart_markdown(png: bytes) -> str:
    """The chart as a markdown image with the PNG inline, which Dagster's UI shows on the materialization."""
    return f"![chart](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"
