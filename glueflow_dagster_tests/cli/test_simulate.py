"""`glueflow simulate` reproduces the guide's two pictures through the real code, with figures that cannot
go stale: the tables checked in under `simulate_expected/` are what the command prints and what the
README's pictures (`docs/simulate_<option>.png`, which carry the table they were drawn from) show."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from glueflow_dagster.cli.simulate import GUIDE_START, PERIOD_S, simulate
from glueflow_dagster.core.chart import PNG_TABLE_KEY, flow_table_markdown
from glueflow_dagster.core.flow_accounting import NO_WINDOW

EXPECTED = Path(__file__).parent / "simulate_expected"
DOCS = Path(__file__).parents[2] / "docs"
OPTIONS = ("disable", "enable")


def _regenerate(option: str) -> str:
    return (
        f"`glueflow simulate --bookmarks {option}` no longer prints {EXPECTED / f'{option}.md'}: the README's "
        f"picture is stale. If the change is meant, regenerate both: `glueflow simulate --bookmarks {option} "
        f"--png docs/simulate_{option}.png > glueflow_dagster_tests/cli/simulate_expected/{option}.md`"
    )


def _expected(option: str) -> str:
    return (EXPECTED / f"{option}.md").read_text(encoding="utf-8").rstrip("\n")


@pytest.fixture(scope="module")
def replays() -> dict[str, object]:
    """The documented command's replays (its default batch size), once per option."""
    return {option: simulate(option) for option in OPTIONS}


@pytest.mark.parametrize("option", OPTIONS)
def test_the_figures_are_the_checked_in_tables(replays, option: str) -> None:
    assert flow_table_markdown(replays[option].slots) == _expected(option), _regenerate(option)


@pytest.mark.parametrize("option", OPTIONS)
def test_the_readme_pictures_were_drawn_from_the_checked_in_tables(option: str) -> None:
    drawn_from = Image.open(DOCS / f"simulate_{option}.png").text.get(PNG_TABLE_KEY)
    assert drawn_from == _expected(option), _regenerate(option)


def test_without_bookmarks_the_ratio_rises_above_one_as_staging_is_reread(replays) -> None:
    result = replays["disable"]
    ratios = [w.ratio for w in result.windows]
    assert ratios[:3] == [pytest.approx(1.0, abs=0.01), pytest.approx(2.0, abs=0.05), pytest.approx(3.0, abs=0.05)]
    assert max(ratio for ratio in ratios if ratio is not None) > 3.5
    # Windows in which no Output run started (the previous one still reading everything) have nothing read: n/a.
    assert [w.ratio for w in result.windows if w.output_bytes_read == 0] == [None, None]
    assert result.total_bytes_read > 3 * result.total_bytes_written
    # The Output runs that started after the last window closed are in a row of their own: the rows add up.
    [outside] = [slot for slot in result.slots if slot.window is None]
    assert outside.outside == NO_WINDOW and outside.output_runs
    assert result.total_bytes_read == sum(run.bytes_read for run in result.output_runs)
    assert sum(slot.output_bytes_read for slot in result.slots) == result.total_bytes_read


def test_with_bookmarks_ratios_stay_near_one_and_every_byte_is_read_once(replays) -> None:
    result = replays["enable"]
    assert all(w.ratio == pytest.approx(1.0, abs=0.01) for w in result.windows)
    assert result.total_bytes_read == result.total_bytes_written


def test_the_guide_timeline_third_input_slow_fourth_overlapping_the_third_output(replays) -> None:
    for result in replays.values():
        starts = [run.start_s - GUIDE_START for run in result.input_runs]
        assert starts == [i * PERIOD_S for i in range(6)]
        third_input, fourth_input = result.input_runs[2], result.input_runs[3]
        third_output = result.output_runs[2]
        assert third_output.start_s == third_input.end_s == GUIDE_START + 77 * 60  # 13:17
        assert third_output.start_s < fourth_input.start_s < third_output.end_s  # the overlap


def test_cli_json_shape_and_png(tmp_path: Path) -> None:
    png = tmp_path / "chart.png"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "glueflow_dagster.cli",
            "simulate",
            "--bookmarks",
            "enable",
            "--json",
            "--png",
            str(png),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert set(data) == {"windows", "outside_windows", "total_bytes_written", "total_bytes_read"}
    assert data["windows"][0]["start"] == "2026-01-01T12:00:00+00:00"
    assert set(data["windows"][0]) == {"start", "input_bytes_written", "output_bytes_read", "ratio"}
    assert data["outside_windows"] == []
    assert data["total_bytes_read"] == data["total_bytes_written"] > 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert Image.open(png).text[PNG_TABLE_KEY] == _expected("enable"), _regenerate("enable")
