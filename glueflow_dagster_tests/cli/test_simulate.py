"""`glueflow simulate` reproduces the guide's two pictures through the real code."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from glueflow_dagster.cli.simulate import GUIDE_START, PERIOD_S, simulate


@pytest.fixture(scope="module")
def replays() -> dict[str, object]:
    return {option: simulate(option, events_per_batch=1_000) for option in ("disable", "enable")}


def test_without_bookmarks_the_ratio_rises_above_one_as_staging_is_reread(replays) -> None:
    result = replays["disable"]
    ratios = [w.ratio for w in result.windows]
    assert ratios[:3] == [pytest.approx(1.0, abs=0.01), pytest.approx(2.0, abs=0.05), pytest.approx(3.0, abs=0.05)]
    assert max(ratios) > 3.5
    assert result.total_bytes_read > 3 * result.total_bytes_written


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
    assert set(data) == {"windows", "total_bytes_written", "total_bytes_read"}
    assert data["windows"][0]["start"] == "2026-01-01T12:00:00+00:00"
    assert set(data["windows"][0]) == {"start", "input_bytes_written", "output_bytes_read", "ratio"}
    assert data["total_bytes_read"] == data["total_bytes_written"] > 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
