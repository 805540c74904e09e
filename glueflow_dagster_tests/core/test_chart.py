"""The guide's chart (PNG) and the windows as markdown and JSON: core/chart.py, drawn without Dagster."""

import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image as mpimg

from glueflow_dagster.core.chart import INPUT_COLOUR, OUTPUT_COLOUR, draw_flow_chart, windows_json, windows_markdown
from glueflow_dagster.core.flow_accounting import InputRun, OutputRun, Window, windows
from glueflow_dagster_tests.core.test_flow_accounting import GUIDE_INPUTS, GUIDE_OUTPUTS, at

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _blend(hex_colour: str, alpha: float) -> np.ndarray:
    """The colour a fill of `hex_colour` at `alpha` shows over the white background, as 0..1 RGB."""
    rgb = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)]) / 255
    return alpha * rgb + (1 - alpha)


def _pixels_near(image: np.ndarray, colour: np.ndarray, tolerance: float = 0.05) -> int:
    return int((np.abs(image[:, :, :3] - colour).max(axis=2) <= tolerance).sum())


def test_the_guides_chart_is_a_png_with_red_input_and_brown_output_areas(tmp_path: Path) -> None:
    window_list = windows(GUIDE_INPUTS, GUIDE_OUTPUTS, 1800)
    png = draw_flow_chart(window_list, GUIDE_INPUTS, GUIDE_OUTPUTS, tmp_path / "charts" / "flow.png", "events")
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
    png = draw_flow_chart([], [], [], tmp_path / "empty.png", "nothing yet")
    assert mpimg.imread(png).shape[:2] == (770, 1210)


def test_very_short_runs_stay_visible(tmp_path: Path) -> None:
    # Real runs last seconds in a 30-minute window: they are widened so the bars can be seen.
    input_runs = [
        InputRun("i1", at("12:00"), at("12:00") + 2, 5_000),
        InputRun("i2", at("12:30"), at("12:30") + 2, 5_000),
    ]
    output_runs = [OutputRun("o1", at("12:00") + 20, at("12:00") + 22, 5_000)]
    png = draw_flow_chart(windows(input_runs, output_runs, 1800), input_runs, output_runs, tmp_path / "s.png", "s")
    image = mpimg.imread(png)
    assert _pixels_near(image, _blend(INPUT_COLOUR, 0.55)) > 500
    assert _pixels_near(image, _blend(OUTPUT_COLOUR, 0.55)) > 250


WINDOWS = [
    Window(at("12:00"), at("12:30"), "in1", 120_000_000, 120_000_000, 1.0),
    Window(at("12:30"), at("13:00"), "in2", 80_000_000, 200_000_000, 2.5),
    Window(at("13:00"), at("13:30"), "in3", 120_000_000, 100_000_000, 100 / 120),
    Window(at("13:30"), None, "in4", 0, 5, None),
]


def test_windows_markdown() -> None:
    assert windows_markdown(WINDOWS) == (
        "| window start (UTC) | input bytes written | output bytes read | ratio |\n"
        "|---|---:|---:|---:|\n"
        "| 2024-05-01T12:00:00+00:00 | 120,000,000 | 120,000,000 | 1.00 |\n"
        "| 2024-05-01T12:30:00+00:00 | 80,000,000 | 200,000,000 | 2.50 |\n"
        "| 2024-05-01T13:00:00+00:00 | 120,000,000 | 100,000,000 | 0.83 |\n"
        "| 2024-05-01T13:30:00+00:00 | 0 | 5 | n/a |"
    )
    assert windows_markdown([]).count("\n") == 1  # the header alone


def test_windows_json() -> None:
    document = windows_json(WINDOWS)
    assert document == {
        "windows": [
            {
                "start": "2024-05-01T12:00:00+00:00",
                "input_bytes_written": 120_000_000,
                "output_bytes_read": 120_000_000,
                "ratio": 1.0,
            },
            {
                "start": "2024-05-01T12:30:00+00:00",
                "input_bytes_written": 80_000_000,
                "output_bytes_read": 200_000_000,
                "ratio": 2.5,
            },
            {
                "start": "2024-05-01T13:00:00+00:00",
                "input_bytes_written": 120_000_000,
                "output_bytes_read": 100_000_000,
                "ratio": 100 / 120,
            },
            {
                "start": "2024-05-01T13:30:00+00:00",
                "input_bytes_written": 0,
                "output_bytes_read": 5,
                "ratio": None,
            },
        ],
        "total_bytes_written": 320_000_000,
        "total_bytes_read": 420_000_005,
    }
    assert json.loads(json.dumps(document)) == document  # plain JSON: null for the undefined ratio
    assert windows_json([]) == {"windows": [], "total_bytes_written": 0, "total_bytes_read": 0}


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
    window_list = windows(input_runs, output_runs, period_s=None)
    fig = flow_figure(window_list, input_runs, output_runs, "labels", dpi=80)
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


def test_output_runs_outside_every_window_are_drawn_in_their_own_slot(tmp_path: Path) -> None:
    from glueflow_dagster.core.chart import flow_figure

    input_runs = [InputRun("i1", at("12:00"), at("12:05"), 1_000)]
    output_runs = [OutputRun("early", at("11:00"), at("11:01"), 500), OutputRun("o1", at("12:10"), at("12:11"), 1_000)]
    window_list = windows(input_runs, output_runs, period_s=1800)
    fig = flow_figure(window_list, input_runs, output_runs, "outside", dpi=80)
    top, bottom = fig.axes[:2]
    assert [label.get_text() for label in bottom.get_xticklabels()] == ["before", "12:00:00"]
    assert len(top.patches) == 3  # the early run is drawn, not dropped
