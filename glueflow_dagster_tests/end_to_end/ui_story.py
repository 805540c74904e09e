"""What a newcomer sees first, checked in the browser (issue 18, "the UI shows the story first").

- `F/flow_report`, on a 1,366x768 laptop screen: the chart (the `flow_chart` thumbnail) on the overview
  without a click, and the `windows` table with the ratio as its second column, inside the viewport and not
  cut off by the metadata table's scrolling box; then the full chart behind "[Show Markdown]".
- `F/output`'s Plots: the six headline plots first, in order, the flow ratio's drawn.

The page functions take the browser page, the webserver's URL and `save(name)`, which takes a screenshot
(test_ui.py's `_save`: the test's tmp_path, and docs/ with GLUEFLOW_UPDATE_DOCS=1).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from glueflow_dagster.components.output_metadata import HEADLINES

LAPTOP = {"width": 1366, "height": 768}
HEADLINE_LABELS = [label for _, label in HEADLINES]
Save = Callable[[str], Path]

# A box's left and right edges and those of the area it can be seen in: the viewport narrowed by every
# ancestor that clips or scrolls horizontally (Dagster's metadata table scrolls inside its column).
_VISIBLE_AREA_JS = """element => {
    const box = element.getBoundingClientRect();
    let left = 0, right = window.innerWidth;
    for (let e = element.parentElement; e; e = e.parentElement) {
        if (getComputedStyle(e).overflowX !== 'visible') {
            const clip = e.getBoundingClientRect();
            left = Math.max(left, clip.left);
            right = Math.min(right, clip.right);
        }
    }
    return {left: box.left, right: box.right, visibleLeft: left, visibleRight: right};
}"""


def dismiss_community_dialog(page: Any) -> None:
    """Dagster's first-visit "Join the Dagster community" dialog covers the page: skip it if shown."""
    skip = page.get_by_role("button", name="Skip", exact=True)
    if skip.count() and skip.first.is_visible():
        skip.first.click()


def canvas_ink(canvas: Any) -> int:
    """Pixels the chart has painted on the canvas (not fully transparent)."""
    return canvas.evaluate(
        """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                  let n = 0; for (let i = 3; i < d.length; i += 4) { if (d[i] > 0) n++; } return n; }"""
    )


def assert_not_clipped(cell: Any, what: str) -> None:
    """`cell` lies wholly inside the viewport and inside every box that could cut it off."""
    area = cell.evaluate(_VISIBLE_AREA_JS)
    assert area["left"] >= area["visibleLeft"] - 1 and area["right"] <= area["visibleRight"] + 1, (what, area)


def check_output_plots(page: Any, url: str, save: Save) -> None:
    """F/output's Plots view: the six headline plots first and in order (their labels sort first; each
    carries its unit), the flow ratio's drawn, the other figures plotted too."""
    from playwright.sync_api import expect

    page.goto(f"{url}/assets/events/output", wait_until="networkidle")
    dismiss_community_dialog(page)
    page.get_by_role("button").filter(has_text="Plots").first.click()
    titles = [page.get_by_text(label, exact=True).locator("visible=true").first for label in HEADLINE_LABELS]
    for title in titles:
        expect(title).to_be_visible()
    boxes = [title.bounding_box() for title in titles]
    assert all(boxes), boxes
    reading_order = sorted(range(len(boxes)), key=lambda i: (round(boxes[i]["y"]), boxes[i]["x"]))
    assert reading_order == list(range(len(boxes))), boxes  # 1 to 6, left to right and top to bottom
    for name in ("flow_ratio", "bytes_read", "records_read"):  # every Int/Float entry is still plotted, below
        plot = page.get_by_text(name, exact=True).locator("visible=true").first
        expect(plot).to_be_visible()
        box = plot.bounding_box()
        assert box and box["y"] > boxes[-1]["y"], (name, box, boxes[-1])
    canvas = titles[0].locator("xpath=ancestor::div[.//canvas][1]//canvas").first
    expect(canvas).to_be_visible()
    deadline = time.monotonic() + 15
    while canvas_ink(canvas) < 500 and time.monotonic() < deadline:
        page.wait_for_timeout(250)
    assert canvas_ink(canvas) >= 500, "the flow ratio plot's canvas is blank"
    titles[0].evaluate("element => element.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(500)  # let the charts finish their entry animation
    save("ui_output_plots.png")


def check_flow_report(page: Any, url: str, save: Save) -> None:
    """F/flow_report at 1,366x768: the thumbnail in place without a click, the windows table's ratio second
    and not cut off; then the full chart behind "[Show Markdown]"."""
    from playwright.sync_api import expect

    viewport = page.viewport_size
    page.set_viewport_size(LAPTOP)
    try:
        page.goto(f"{url}/assets/events/flow_report", wait_until="networkidle")
        dismiss_community_dialog(page)
        table_view = page.get_by_role("button", name="Table", exact=True)
        if table_view.count() and table_view.first.is_visible():
            table_view.first.click()  # the metadata as a table, not plots
        # The thumbnail (`flow_chart`) is shown in place on the overview, without a click.
        thumbnail = page.locator('img[alt="flow chart"]').locator("visible=true").first
        expect(thumbnail).to_be_visible()
        thumb_box = thumbnail.bounding_box()
        assert thumb_box and thumb_box["width"] >= 100 and thumb_box["height"] >= 60, thumb_box
        assert_not_clipped(thumbnail, "the flow_chart thumbnail")
        windows = page.locator("tr", has=page.get_by_text("windows", exact=True)).locator("visible=true").first
        windows.scroll_into_view_if_needed()
        headers = [text.strip() for text in windows.locator("th").all_text_contents()]
        assert headers[:2] == ["window start (UTC)", "ratio"], headers
        ratio_cells = [windows.locator("th").nth(1)]
        for row in windows.locator("tbody tr").all():
            cell = row.locator("td").nth(1)
            assert re.fullmatch(r"\d+\.\d\d|n/a", (cell.text_content() or "").strip()), cell.text_content()
            ratio_cells.append(cell)
        assert len(ratio_cells) >= 3, "a window and the total"
        for cell in ratio_cells:
            assert_not_clipped(cell, "the windows table's ratio column at 1,366 px")
        thumbnail.evaluate("element => element.closest('tr').scrollIntoView({block: 'start'})")
        page.wait_for_timeout(300)
        save("ui_flow_report_1366.png")
        _check_full_chart(page, save)
    finally:
        page.set_viewport_size(viewport)


def _check_full_chart(page: Any, save: Save) -> None:
    from playwright.sync_api import expect

    row = page.locator("tr", has=page.get_by_text("chart", exact=True)).locator("visible=true").first
    expect(row).to_be_visible()
    row.get_by_text("[Show Markdown]").click()
    image = page.locator('img[alt="chart"]').locator("visible=true").first
    expect(image).to_be_visible()
    deadline = time.monotonic() + 15
    while not image.evaluate("img => img.complete && img.naturalWidth > 0") and time.monotonic() < deadline:
        page.wait_for_timeout(250)
    width, height = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert width > 0 and height > 0, "the chart image did not load"
    box = image.bounding_box()
    assert box and box["width"] > 300 and box["height"] > 200, box  # shown, not a thumbnail
    page.wait_for_timeout(300)
    save("ui_flow_report_chart.png")
    page.keyboard.press("Escape")
