"""Each check trips on the figures built to trip it, and passes on healthy ones."""

import pytest

from glueflow_dagster.core.checks import (
    backlog_not_growing,
    evaluate,
    flow_ratio_in_band,
    no_records_lost,
    no_reprocessing,
)

HEALTHY = {
    "bookmark_option": "enable",
    "reprocessed_bytes": 0,
    "flow_ratio": 1.0,
    "records_read": 10,
    "records_written": 9,
    "error_records": 1,
    "backlog_bytes": 0,
}


@pytest.mark.parametrize(
    ("option", "reprocessed", "passed"),
    [("enable", 0, True), ("enable", 1, False), ("disable", 500, True), ("pause", 500, True)],
)
def test_no_reprocessing_warns_only_with_bookmarks_enabled(option: str, reprocessed: int, passed: bool) -> None:
    verdict = no_reprocessing({"bookmark_option": option, "reprocessed_bytes": reprocessed})
    assert (verdict.passed, verdict.severity) == (passed, "WARN")


@pytest.mark.parametrize(
    ("backlogs", "passed"),
    [([1, 2, 3], False), ([1, 2, 2], True), ([3, 2, 1], True), ([5, 1, 2, 3], False), ([1, 2], True), ([], True)],
)
def test_backlog_growing_over_three_runs(backlogs: list[int], passed: bool) -> None:
    assert backlog_not_growing(backlogs).passed is passed


@pytest.mark.parametrize(
    ("ratio", "band", "passed"),
    [
        (1.0, (0.5, 2.0), True),
        (2.5, (0.5, 2.0), False),
        (0.49, (0.5, 2.0), False),
        (2.5, (0.1, 3.0), True),
        (None, (0.5, 2.0), True),
    ],
)
def test_flow_ratio_band(ratio: float | None, band: tuple[float, float], passed: bool) -> None:
    assert flow_ratio_in_band({"flow_ratio": ratio}, band).passed is passed


def test_records_lost_is_an_error() -> None:
    lost = no_records_lost({"records_read": 10, "records_written": 8, "error_records": 1})
    assert (lost.passed, lost.severity, lost.figures["missing_records"]) == (False, "ERROR", 1)
    assert no_records_lost(HEALTHY).passed


def test_evaluate_runs_all_checks_with_this_runs_backlog_last() -> None:
    verdicts = evaluate({**HEALTHY, "backlog_bytes": 30}, [10, 20], (0.5, 2.0))
    assert [v.passed for v in verdicts] == [True, False, True, True, True]


def test_vanished_objects_trip_a_warn_check() -> None:
    [verdict] = [
        v
        for v in evaluate({**HEALTHY, "vanished_files": 2, "vanished_bytes": 70}, [], (0.5, 2.0))
        if v.name == "no_vanished_objects"
    ]
    assert not verdict.passed and verdict.severity == "WARN"
    assert verdict.description == "2 planned objects (70 bytes) were deleted before this run read them"
