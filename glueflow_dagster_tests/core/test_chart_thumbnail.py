"""The chart's thumbnail: the picture Dagster shows in place on F/flow_report's overview."""

import base64
import io
import re

from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from glueflow_dagster.core.chart_thumbnail import (
    _BYTES_PX,
    _GAP_PX,
    _PALETTE,
    _RATIO_PX,
    _SLOT_PX,
    DAGSTER_INLINE_MARKDOWN_CHARS,
    LEGEND_LINE_CHARS,
    THUMBNAIL_WINDOWS,
    thumbnail_markdown,
    thumbnail_png,
)
from glueflow_dagster.core.flow_accounting import Window


def _window(i: int, written: int, read: int) -> Window:
    return Window(i * 1800.0, (i + 1) * 1800.0, f"run{i}", written, read, read / written if written and read else None)


def _image(markdown: str) -> Image.Image:
    encoded = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)\)", markdown)
    assert encoded is not None, markdown
    return Image.open(io.BytesIO(base64.b64decode(encoded.group(1)))).convert("RGB")


def _colours_in_slot(image: Image.Image, slot: int, top: int, bottom: int) -> set[tuple[int, int, int]]:
    x0 = 1 + slot * _SLOT_PX
    return {image.getpixel((x, y)) for x in range(x0, x0 + _SLOT_PX - 2) for y in range(top, bottom)}


def test_a_steady_history_fits_inline_with_the_last_thumbnail_windows() -> None:
    steady = [_window(i, 420_000, 420_000) for i in range(60)]
    markdown = thumbnail_markdown(steady)
    assert len(markdown) < DAGSTER_INLINE_MARKDOWN_CHARS
    assert f"Last {THUMBNAIL_WINDOWS} Input windows" in markdown and "**1.00**" in markdown
    assert _image(markdown).width == THUMBNAIL_WINDOWS * _SLOT_PX + 2


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 10**9)), min_size=0, max_size=120))
def test_any_history_stays_under_dagsters_inline_limit(pairs: list[tuple[int, int]]) -> None:
    markdown = thumbnail_markdown([_window(i, w, r) for i, (w, r) in enumerate(pairs)])
    assert len(markdown) < DAGSTER_INLINE_MARKDOWN_CHARS
    assert _image(markdown).height == _BYTES_PX + _GAP_PX + _RATIO_PX + 1


def test_bars_show_the_ratio_and_a_window_with_nothing_to_compare_shows_no_bar() -> None:
    history = [_window(0, 1000, 1000), _window(1, 1000, 2000), _window(2, 1000, 0), _window(3, 0, 0)]
    image = _image(thumbnail_markdown(history))
    ratio_top, ratio_bottom = _BYTES_PX + _GAP_PX, _BYTES_PX + _GAP_PX + _RATIO_PX - 1
    assert _PALETTE["ratio"] in _colours_in_slot(image, 0, ratio_top, ratio_bottom)
    assert _PALETTE["alarm"] in _colours_in_slot(image, 1, ratio_top, ratio_bottom)  # read twice: 2.00
    for empty in (2, 3):  # nothing read, or nothing written and nothing read: n/a, a grey tick
        colours = _colours_in_slot(image, empty, ratio_top, ratio_bottom)
        assert _PALETTE["na"] in colours and not colours & {_PALETTE["ratio"], _PALETTE["alarm"]}
    bytes_slot = _colours_in_slot(image, 1, 0, _BYTES_PX - 1)
    assert {_PALETTE["written"], _PALETTE["read"]} <= bytes_slot


def test_the_latest_ratio_is_n_a_when_no_window_has_one() -> None:
    assert "**n/a**" in thumbnail_markdown([_window(0, 0, 0)])
    assert thumbnail_png([]).startswith(b"\x89PNG")


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 10**9)), min_size=0, max_size=80))
def test_the_ratio_comes_first_then_the_picture_then_a_legend_in_short_lines(pairs: list[tuple[int, int]]) -> None:
    """At 1,366 px Dagster shows 42-46 characters of the value column: every text line fits, the ratio and
    the picture come first so that they are on the first screen."""
    markdown = thumbnail_markdown([_window(i, w, r) for i, (w, r) in enumerate(pairs)])
    first, picture, legend = markdown.split("\n\n")
    assert re.fullmatch(r"Latest flow ratio \*\*(\d+\.\d\d|n/a)\*\*", first), first
    assert picture.startswith("![flow chart](data:image/png;base64,")
    assert len(first.replace("**", "")) <= LEGEND_LINE_CHARS
    lines = legend.split("  \n")
    assert re.fullmatch(r"Last \d+ Input windows?, oldest left:", lines[0]), lines[0]
    assert all(len(line) <= LEGEND_LINE_CHARS for line in lines), lines


def test_the_thumbnail_of_the_last_32_windows_fits_beside_the_label_at_1366_px() -> None:
    image = _image(thumbnail_markdown([_window(i, 1000, 1000 + i) for i in range(100)]))
    assert THUMBNAIL_WINDOWS == 32 and image.width == 32 * _SLOT_PX + 2 <= 330
