"""The guide's chart (PNG) and the windows as markdown and JSON: core/chart.py, drawn without Dagster."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from matplotlib import image as mpimg
from PIL import Image

from glueflow_dagster.core.chart import (
    INPUT_COLOUR,
    OUTPUT_COLOUR,
    PNG_TABLE_KEY,
    draw_flow_chart,
    flow_table_json,
    flow_table_markdown,
    render_flow_chart,
)
from glueflow_dagster.core.flow_accounting import InputRun, OutputRun, flow_slots
from glueflow_dagster_tests.core.test_flow_accounting import GUIDE_INPUTS, GUIDE_OUTPUTS, _histories, at

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _blend(hex_colour: str, alpha: float) -> np.ndarray:
    """The colour a fill of `hex_colour` at `alpha` shows over the white background, as 0..1 RGB."""
    rgb = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)]) / 255
    return alpha * rgb + (1 - alpha)


def _pixels_near(image: np.ndarray, colour: np.ndarray, tolerance: float = 0.05) -> int:
    return int((np.abs(image[:, :, :3] - colour).max(axis=2) <= tolerance).sum())


def test_the_guides_chart_is_a_png_with_red_input_and_brown_output_areas(tmp_path: Path) -> None:
    png = draw_flow_chart(flow_slots(GUIDE_INPUTS, GUIDE_OUTPUTS, 1800), tmp_path / "charts" / "flow.png", "events")
    assert png == tmp_path / "charts" / "flow.png"
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    image = mpimg.imread(png)
    height, width, channels = image.shape
    assert (height, width) == (770, 1210) and channels in (3, 4)
    # Both fills are drawn with alpha 0.55 over white: large areas of each blended colour.
    assert _pixels_near(image, _blend(INPUT_COLOUR, 0.55)) > 5_000
    assert _pixels_near(image, _blend(OUTPUT_COLOUR, 0.55)) > 20_000
    # The outlines in the full colours, as in the guide's chart.
    assert _pixels_near(image, _blend(INPUT_COLOUR, 1.0), 0.08) > 200
    assert _pixels_near(image, _blend(OUTPUT_COLOUR, 1.0), 0.08) > 200


def test_a_chart_without_runs_is_still_a_png(tmp_path: Path) -> None:
    png = draw_flow_chart([], tmp_path / "empty.png", "nothing yet")
    assert mpimg.imread(png).shape[:2] == (770, 1210)


def test_very_short_runs_stay_visible(tmp_path: Path) -> None:
    # Real runs last seconds in a 30-minute window: they are widened so the bars can be seen.
    input_runs = [
        InputRun("i1", at("12:00"), at("12:00") + 2, 5_000),
        InputRun("i2", at("12:30"), at("12:30") + 2, 5_000),
    ]
    output_runs = [OutputRun("o1", at("12:00") + 20, at("12:00") + 22, 5_000)]
    png = draw_flow_chart(flow_slots(input_runs, output_runs, 1800), tmp_path / "s.png", "s")
    image = mpimg.imread(png)
    assert _pixels_near(image, _blend(INPUT_COLOUR, 0.55)) > 500
    assert _pixels_near(image, _blend(OUTPUT_COLOUR, 0.55)) > 250


MB = 1_000_000
# Output runs before the first Input run and after the last window closed, a window whose Input run wrote
# nothing, and the guide's ratios in between.
TABLE_INPUTS = [
    InputRun("in1", at("12:00"), at("12:05"), 120 * MB),
    InputRun("in2", at("12:30"), at("12:35"), 80 * MB),
    InputRun("in3", at("13:00"), at("13:05"), 120 * MB),
    InputRun("in4", at("13:30"), at("13:35"), 0),
]
TABLE_OUTPUTS = [
    OutputRun("early", at("11:50"), at("11:51"), 7),
    OutputRun("o1", at("12:06"), at("12:10"), 120 * MB),
    OutputRun("o2", at("12:36"), at("12:40"), 200 * MB),
    OutputRun("o3", at("13:06"), at("13:10"), 100 * MB),
    OutputRun("o4", at("13:36"), at("13:40"), 5),
    OutputRun("late", at("14:10"), at("14:11"), 9),
    OutputRun("later", at("14:20"), at("14:21"), 0),
]
SLOTS = flow_slots(TABLE_INPUTS, TABLE_OUTPUTS, period_s=1800)


def test_flow_table_markdown_has_a_labelled_row_for_runs_outside_every_window_and_the_totals() -> None:
    assert flow_table_markdown(SLOTS) == (
        "| window start (UTC) | input bytes written | output bytes read | ratio |\n"
        "|---|---:|---:|---:|\n"
        "| before the first Input run (1 Output run) | - | 7 | n/a |\n"
        "| 2024-05-01T12:00:00+00:00 | 120,000,000 | 120,000,000 | 1.00 |\n"
        "| 2024-05-01T12:30:00+00:00 | 80,000,000 | 200,000,000 | 2.50 |\n"
        "| 2024-05-01T13:00:00+00:00 | 120,000,000 | 100,000,000 | 0.83 |\n"
        "| 2024-05-01T13:30:00+00:00 | 0 | 5 | n/a |\n"
        "| no window (2 Output runs) | - | 9 | n/a |\n"
        "| total | 320,000,000 | 420,000,021 | 1.31 |"
    )
    assert flow_table_markdown([]) == (
        "| window start (UTC) | input bytes written | output bytes read | ratio |\n|---|---:|---:|---:|\n"
        "| total | 0 | 0 | n/a |"
    )


def test_the_ui_table_has_the_ratio_second_and_the_same_rows() -> None:
    """F/flow_report's `windows`: the ratio right after the window, so a narrow screen never cuts it off."""
    assert flow_table_markdown(SLOTS, ratio_second=True) == (
        "| window start (UTC) | ratio | input bytes written | output bytes read |\n"
        "|---|---:|---:|---:|\n"
        "| before the first Input run (1 Output run) | n/a | - | 7 |\n"
        "| 2024-05-01T12:00:00+00:00 | 1.00 | 120,000,000 | 120,000,000 |\n"
        "| 2024-05-01T12:30:00+00:00 | 2.50 | 80,000,000 | 200,000,000 |\n"
        "| 2024-05-01T13:00:00+00:00 | 0.83 | 120,000,000 | 100,000,000 |\n"
        "| 2024-05-01T13:30:00+00:00 | n/a | 0 | 5 |\n"
        "| no window (2 Output runs) | n/a | - | 9 |\n"
        "| total | 1.31 | 320,000,000 | 420,000,021 |"
    )


def test_flow_table_json() -> None:
    document = flow_table_json(SLOTS)
    assert document == {
        "windows": [
            {
                "start": "2024-05-01T12:00:00+00:00",
                "input_bytes_written": 120 * MB,
                "output_bytes_read": 120 * MB,
                "ratio": 1.0,
            },
            {
                "start": "2024-05-01T12:30:00+00:00",
                "input_bytes_written": 80 * MB,
                "output_bytes_read": 200 * MB,
                "ratio": 2.5,
            },
            {
                "start": "2024-05-01T13:00:00+00:00",
                "input_bytes_written": 120 * MB,
                "output_bytes_read": 100 * MB,
                "ratio": 100 / 120,
            },
            {
                "start": "2024-05-01T13:30:00+00:00",
                "input_bytes_written": 0,
                "output_bytes_read": 5,
                "ratio": None,
            },
        ],
        "outside_windows": [
            {
                "slot": "before the first Input run",
                "output_runs": 1,
                "first_start": "2024-05-01T11:50:00+00:00",
                "output_bytes_read": 7,
            },
            {
                "slot": "no window",
                "output_runs": 2,
                "first_start": "2024-05-01T14:10:00+00:00",
                "output_bytes_read": 9,
            },
        ],
        "total_bytes_written": 320 * MB,
        "total_bytes_read": 420 * MB + 21,
    }
    assert json.loads(json.dumps(document)) == document  # plain JSON: null for the undefined ratio
    assert flow_table_json([]) == {
        "windows": [],
        "outside_windows": [],
        "total_bytes_written": 0,
        "total_bytes_read": 0,
    }


def _table_rows(markdown: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in markdown.splitlines()[2:]]


def _number(cell: str) -> int:
    return 0 if cell == "-" else int(cell.replace(",", ""))


@settings(max_examples=200, deadline=None)
@given(_histories())
def test_the_table_and_the_json_of_any_history_add_up_to_their_totals(
    history: tuple[list[InputRun], list[OutputRun], float | None],
) -> None:
    """Issue 18: every byte in the totals is in a row, runs outside every window included."""
    input_runs, output_runs, period_s = history
    slots = flow_slots(input_runs, output_runs, period_s)
    written = sum(run.bytes_written for run in input_runs)
    read = sum(run.bytes_read for run in output_runs)
    *rows, total = _table_rows(flow_table_markdown(slots))
    assert total[0] == "total" and (_number(total[1]), _number(total[2])) == (written, read)
    assert sum(_number(row[1]) for row in rows) == written and sum(_number(row[2]) for row in rows) == read
    document = flow_table_json(slots)
    listed = document["windows"] + document["outside_windows"]
    assert (document["total_bytes_written"], document["total_bytes_read"]) == (written, read)
    assert sum(w["input_bytes_written"] for w in document["windows"]) == written
    assert sum(row["output_bytes_read"] for row in listed) == read
    assert sum(row["output_runs"] for row in document["outside_windows"]) + sum(
        len(slot.output_runs) for slot in slots if slot.window is not None
    ) == len(output_runs)


def test_the_png_carries_the_table_it_was_drawn_from() -> None:
    png = render_flow_chart(SLOTS, "table inside", dpi=40)
    assert Image.open(io.BytesIO(png)).text[PNG_TABLE_KEY] == flow_table_markdown(SLOTS)


def _label_boxes(fig) -> dict[str, list]:
    """Pixel boxes of the value labels of each panel, after a draw."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    top, bottom = fig.axes[:2]
    return {
        name: [text.get_window_extent(renderer) for text in ax.texts if text.get_text()]
        for name, ax in (("top", top), ("bottom", bottom))
    }


def _overlaps(boxes: list) -> list[tuple[int, int]]:
    return [(i, j) for i in range(len(boxes)) for j in range(i + 1, len(boxes)) if boxes[i].overlaps(boxes[j])]


@pytest.mark.parametrize("count", [3, 12, 30])
def test_value_labels_never_overlap_and_idle_gaps_do_not_squeeze_the_windows(count: int) -> None:
    from glueflow_dagster.core.chart import flow_figure

    # Runs of seconds, some windows 30 minutes apart and some after 8 idle hours.
    start = at("00:00")
    input_runs, output_runs = [], []
    for i in range(count):
        start += 1800 if i % 4 else 8 * 3600
        input_runs.append(InputRun(f"in{i}", start, start + 3, 390_000 + 1_000 * i))
        output_runs.append(OutputRun(f"out{i}", start + 20, start + 24, 390_000 * (1 + i % 5)))
        if i % 3 == 0:  # a second Output run in some windows
            output_runs.append(OutputRun(f"again{i}", start + 60, start + 64, 390_000))
    fig = flow_figure(flow_slots(input_runs, output_runs, period_s=None), "labels", dpi=80)
    boxes = _label_boxes(fig)
    # No two labels overlap; every bar is labelled while the bars are wide enough for a line of text.
    assert _overlaps(boxes["top"]) == [] and _overlaps(boxes["bottom"]) == []
    assert len(boxes["bottom"]) == count
    assert len(boxes["top"]) == (len(input_runs) + len(output_runs) if count <= 12 else 0)
    # One slot per window whatever the idle time before it: the ratio bars are equally spaced.
    bottom = fig.axes[1]
    centres = sorted(patch.get_x() + patch.get_width() / 2 for patch in bottom.patches)
    assert np.allclose(np.diff(centres), 1.0)
    assert [label.get_text() for label in bottom.get_xticklabels()][0].endswith("08:00")


def test_output_runs_outside_every_window_are_drawn_in_their_own_slot_and_n_a_has_no_bar() -> None:
    from glueflow_dagster.core.chart import flow_figure

    fig = flow_figure(SLOTS, "outside", dpi=80)
    top, bottom = fig.axes[:2]
    ticks = [label.get_text() for label in bottom.get_xticklabels()]
    assert ticks == ["before", "12:00", "12:30", "13:00", "13:30", "no window"]
    assert len(top.patches) == len(TABLE_INPUTS) + len(TABLE_OUTPUTS)  # the runs outside are drawn, not dropped
    # Ratio bars only for the three windows with something to compare; "n/a" in the three other slots.
    centres = sorted(round(patch.get_x() + patch.get_width() / 2) for patch in bottom.patches)
    assert centres == [1, 2, 3]
    not_applicable = sorted(round(text.get_position()[0]) for text in bottom.texts if text.get_text() == "n/a")
    assert not_applicable == [0, 4, 5]
