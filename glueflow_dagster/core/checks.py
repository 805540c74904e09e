"""Data-flow checks on each Output run's figures: reprocessing, loss, growing backlog, odd ratios.

Plain Python (no Dagster import): each check is a pure function of the run's metadata (and the
backlog of earlier runs); `assets.py` turns the verdicts into Dagster asset check results.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_FLOW_RATIO_BAND = (0.5, 2.0)
BACKLOG_RUNS = 3

# Check names on `F/output` (a contract: README).
NO_REPROCESSING = "no_reprocessing"
BACKLOG_NOT_GROWING = "backlog_not_growing"
FLOW_RATIO_IN_BAND = "flow_ratio_in_band"
NO_RECORDS_LOST = "no_records_lost"
NO_VANISHED_OBJECTS = "no_vanished_objects"
CHECK_NAMES = (NO_REPROCESSING, BACKLOG_NOT_GROWING, FLOW_RATIO_IN_BAND, NO_RECORDS_LOST, NO_VANISHED_OBJECTS)
ERROR_CHECKS = (NO_RECORDS_LOST,)


@dataclass(frozen=True)
class Verdict:
    name: str
    passed: bool
    description: str
    figures: dict[str, Any]

    @property
    def severity(self) -> str:
        return "ERROR" if self.name in ERROR_CHECKS else "WARN"


def no_reprocessing(metadata: Mapping[str, Any]) -> Verdict:
    reprocessed = int(metadata.get("reprocessed_bytes", 0))
    enabled = metadata.get("bookmark_option") == "enable"
    passed = not (enabled and reprocessed > 0)
    text = (
        f"{reprocessed:,} bytes read again although bookmarks are enabled"
        if not passed
        else "no staging object read twice"
        if enabled
        else "bookmarks are not enabled: rereads are expected"
    )
    return Verdict(NO_REPROCESSING, passed, text, {"reprocessed_bytes": reprocessed})


def backlog_not_growing(backlogs_oldest_first: Sequence[int]) -> Verdict:
    """WARN when the backlog grew at each of the last `BACKLOG_RUNS` runs (this one included)."""
    recent = list(backlogs_oldest_first)[-BACKLOG_RUNS:]
    growing = len(recent) == BACKLOG_RUNS and all(a < b for a, b in zip(recent, recent[1:], strict=False))
    text = (
        f"backlog grew over the last {BACKLOG_RUNS} runs: " + " -> ".join(f"{b:,}" for b in recent) + " bytes"
        if growing
        else "backlog is not growing"
    )
    return Verdict(BACKLOG_NOT_GROWING, not growing, text, {"backlog_bytes": recent[-1] if recent else 0})


def flow_ratio_in_band(metadata: Mapping[str, Any], band: tuple[float, float]) -> Verdict:
    low, high = band
    ratio = metadata.get("flow_ratio")
    if ratio is None:
        text = "flow_ratio n/a: nothing written or nothing read in the run's Input window"
        return Verdict(FLOW_RATIO_IN_BAND, True, text, {})
    passed = low <= float(ratio) <= high
    where = "inside" if passed else "outside"
    return Verdict(
        FLOW_RATIO_IN_BAND,
        passed,
        f"flow_ratio {float(ratio):.2f} is {where} [{low}, {high}]",
        {"flow_ratio": float(ratio)},
    )


def no_records_lost(metadata: Mapping[str, Any]) -> Verdict:
    read = int(metadata.get("records_read", 0))
    written = int(metadata.get("records_written", 0))
    errors = int(metadata.get("error_records", 0))
    passed = read == written + errors
    text = f"records_read {read:,} {'==' if passed else '!='} records_written {written:,} + error_records {errors:,}"
    return Verdict(NO_RECORDS_LOST, passed, text, {"missing_records": read - written - errors})


def no_vanished_objects(metadata: Mapping[str, Any]) -> Verdict:
    """WARN when planned staging objects were deleted before the run could read them (their records are
    not in the output: someone removed committed data)."""
    files = int(metadata.get("vanished_files", 0))
    size = int(metadata.get("vanished_bytes", 0))
    text = (
        f"{files:,} planned objects ({size:,} bytes) were deleted before this run read them"
        if files
        else "every planned object was read"
    )
    return Verdict(NO_VANISHED_OBJECTS, files == 0, text, {"vanished_files": files, "vanished_bytes": size})


def evaluate(metadata: Mapping[str, Any], earlier_backlogs: Sequence[int], band: tuple[float, float]) -> list[Verdict]:
    """All verdicts for one Output run; `earlier_backlogs` are the previous runs', oldest first."""
    backlogs = [*earlier_backlogs, int(metadata.get("backlog_bytes", 0))]
    return [
        no_reprocessing(metadata),
        backlog_not_growing(backlogs),
        flow_ratio_in_band(metadata, band),
        no_records_lost(metadata),
        no_vanished_objects(metadata),
    ]
