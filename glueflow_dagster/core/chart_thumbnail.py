"""The guide's chart in miniature: small enough for Dagster's UI to show inline, without a click.

Dagster renders a markdown metadata value in place on an asset's overview only while it is shorter than
1,000 characters; the full chart (`chart.py`, about 60 kB) therefore sits behind "[Show Markdown]". This
thumbnail keeps the chart's two panels, drawn with a six-colour palette and no text so that its PNG stays
under about 700 bytes and its markdown under the limit:

- top: per Input window, the bytes its Input run wrote (red) beside the bytes Output runs read (brown),
  scaled to the largest bar;
- bottom: the flow ratio per window (blue; orange above 1.5 or below 0.5), with the 1.0 line dashed.
  A window with nothing to compare (ratio n/a) gets a grey tick on the baseline, not a bar.

The labels live in the markdown around the image, so the picture itself needs none.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

from PIL import Image, ImageDraw

from glueflow_dagster.core.flow_accounting import Window, latest_ratio

# Dagster shows markdown metadata inline below this many characters (ui-core MetadataEntry.tsx).
DAGSTER_INLINE_MARKDOWN_CHARS = 1000
THUMBNAIL_WINDOWS = 32  # 16 hours of 30-minute windows, 322 px wide: beside the label at 1,366 px
LEGEND_LINE_CHARS = 40  # visible in the value column at 1,366 px (see thumbnail_markdown)
THUMBNAIL_MIN_SLOTS = 12  # a young flow's few windows still get a picture of a readable size
_SLOT_PX = 10  # one window: two 4 px bars and a 2 px gap
_BYTES_PX = 56
_RATIO_PX = 40
_GAP_PX = 8
_RATIO_CEILING = 2.5  # ratios above this are drawn at the top (the full chart has the numbers)
_PALETTE = {
    "white": (255, 255, 255),
    "written": (214, 39, 40),
    "read": (140, 86, 75),
    "ratio": (31, 119, 180),
    "alarm": (255, 127, 14),
    "line": (0, 0, 0),
    "na": (170, 170, 170),
}
_INDEX = {name: i for i, name in enumerate(_PALETTE)}


def thumbnail_png(windows: Sequence[Window]) -> bytes:
    """The windows as a small palette PNG (see the module docstring)."""
    shown = list(windows)
    width = max(len(shown), THUMBNAIL_MIN_SLOTS) * _SLOT_PX + 2
    height = _BYTES_PX + _GAP_PX + _RATIO_PX + 1
    image = Image.new("P", (width, height), _INDEX["white"])
    image.putpalette([channel for rgb in _PALETTE.values() for channel in rgb])
    draw = ImageDraw.Draw(image)
    _draw_bytes(draw, shown)
    _draw_ratios(draw, shown, top=_BYTES_PX + _GAP_PX)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True, bits=4)
    return out.getvalue()


def _draw_bytes(draw: ImageDraw.ImageDraw, windows: Sequence[Window]) -> None:
    peak = max((max(w.input_bytes_written, w.output_bytes_read) for w in windows), default=0)
    draw.line([(0, _BYTES_PX - 1), (len(windows) * _SLOT_PX + 1, _BYTES_PX - 1)], fill=_INDEX["line"])
    if peak <= 0:
        return
    for i, window in enumerate(windows):
        x = 1 + i * _SLOT_PX
        bars = ((0, window.input_bytes_written, "written"), (4, window.output_bytes_read, "read"))
        for offset, value, colour in bars:
            bar = round((_BYTES_PX - 2) * value / peak)
            if bar > 0:
                draw.rectangle([x + offset, _BYTES_PX - 1 - bar, x + offset + 3, _BYTES_PX - 2], fill=_INDEX[colour])


def _draw_ratios(draw: ImageDraw.ImageDraw, windows: Sequence[Window], *, top: int) -> None:
    base = top + _RATIO_PX - 1
    scale = (_RATIO_PX - 2) / _RATIO_CEILING
    for i, window in enumerate(windows):
        x = 1 + i * _SLOT_PX
        if window.ratio is None:
            draw.line([(x + 2, base - 1), (x + 5, base - 1)], fill=_INDEX["na"])
            continue
        bar = max(round(min(window.ratio, _RATIO_CEILING) * scale), 1)
        colour = "alarm" if window.ratio > 1.5 or window.ratio < 0.5 else "ratio"
        draw.rectangle([x, base - bar, x + 7, base - 1], fill=_INDEX[colour])
    draw.line([(0, base), (len(windows) * _SLOT_PX + 1, base)], fill=_INDEX["line"])
    one = base - round(scale)
    for x in range(0, len(windows) * _SLOT_PX + 2, 4):
        draw.line([(x, one), (x + 1, one)], fill=_INDEX["line"])


def thumbnail_markdown(windows: Sequence[Window]) -> str:
    """The thumbnail with its legend, as markdown short enough for Dagster to render inline: the latest
    `THUMBNAIL_WINDOWS` windows, fewer when irregular bars make the PNG too large for the limit.

    The latest ratio comes first and the picture right below it, so both are on the first screen; the
    legend follows in lines of at most `LEGEND_LINE_CHARS` (hard breaks), because Dagster sizes the value
    column to its widest entry (the windows table) and at 1,366 px shows only its first 360-390 px
    (42-46 characters)."""
    latest = latest_ratio(windows)
    ratio = "n/a" if latest is None else f"{latest:.2f}"
    shown = min(len(windows), THUMBNAIL_WINDOWS)
    while True:
        png = base64.b64encode(thumbnail_png(windows[len(windows) - shown :])).decode()
        legend = "  \n".join(
            (
                f"Last {shown} Input window{'s' if shown != 1 else ''}, oldest left:",
                "bytes written (red), bytes read (brown);",
                "ratio (blue; orange outside 0.5-1.5),",
                "dashed line 1.0, grey tick n/a",
            )
        )
        text = f"Latest flow ratio **{ratio}**\n\n![flow chart](data:image/png;base64,{png})\n\n{legend}"
        if len(text) < DAGSTER_INLINE_MARKDOWN_CHARS or shown <= 1:
            return text
        shown = max(shown * 3 // 4, 1)
