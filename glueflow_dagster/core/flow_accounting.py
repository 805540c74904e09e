"""Exact flow accounting between the Input and Output jobs, as the Glue guide reads it.

Plain Python (no Dagster import). The guide's ratio, per Input trigger window: the bytes read by the
Output runs that *started* in the window, over the bytes written by the window's Input run. A window
opens when an Input run starts and closes when the next one starts (the last one after `period_s`,
or never when `period_s` is None).

Every Output run is counted once: in its window, or in a row of its own when it falls in no window
(`flow_slots`: before the first Input run, or after the last window closed), so a table of the slots adds
up to the totals.

Staging objects are named `run-<Input run id>-attempt-<n>-part-r-NNNNN[.json[.gz]]`, so the Input run that
produced every byte an Output run reads is known exactly: `producing_run_id`, `bytes_by_input_run`.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from glueflow_dagster.core.bookmarks import Bookmark, BookmarkPolicy, commit, covers, select_objects
from glueflow_dagster.core.commits import attempt_of
from glueflow_dagster.core.flow_ratio import flow_ratio
from glueflow_dagster.core.storage import ObjectInfo

# The guide's Input job trigger: every 30 minutes.
DEFAULT_PERIOD_S = 1800.0
# Metadata key (JSON {input run id: bytes}) under which an Output materialization lists what it read
# from each producing Input run; `report.history_from_instance` reads it when present.
BYTES_READ_BY_INPUT_RUN_KEY = "bytes_read_by_input_run"

# Labels of the Output runs that count in no window (their own row in the table, slot in the chart).
BEFORE_FIRST_WINDOW = "before the first Input run"
NO_WINDOW = "no window"

# Glue's own part names, `run-<id>-part-r-<digits>` (greedy id: it may hold dashes); the commit protocol's
# attempt names are parsed by commits.attempt_of.
_GLUE_PART_NAME = re.compile(r"run-(?P<run_id>.+)-part-r-\d+(?:\.[^/]*)?")


@dataclass(frozen=True)
class InputRun:
    run_id: str
    start_s: float
    end_s: float
    bytes_written: int


@dataclass(frozen=True)
class OutputRun:
    run_id: str
    start_s: float
    end_s: float
    bytes_read: int
    bytes_read_by_input_run: dict[str, int] = field(default_factory=dict)
    # The Input run whose window the run counted itself in when it ran (metadata `input_run_id`), so the
    # report places it where its own `flow_ratio` did, even if an Input run that was still running then
    # (no window yet) started before it. None: placed by its start time.
    window_input_run_id: str | None = None


@dataclass(frozen=True)
class Window:
    """One Input trigger window: [start_s, end_s), end_s None when open-ended."""

    start_s: float
    end_s: float | None
    input_run_id: str
    input_bytes_written: int
    output_bytes_read: int
    ratio: float | None

    def contains(self, t: float) -> bool:
        return self.start_s <= t and (self.end_s is None or t < self.end_s)


class _Sized(Protocol):
    key: str
    size: int


def windows(
    input_runs: Iterable[InputRun],
    output_runs: Iterable[OutputRun],
    period_s: float | None = DEFAULT_PERIOD_S,
) -> list[Window]:
    """One window per Input run, oldest first, with the bytes read by Output runs started inside it.

    Output runs that started before the first Input run belong to no window (`flow_slots` gives them and
    every other Output run outside the windows a slot of their own). Two Input runs with
    the same start give the first (by run id) an empty window. An Output run that recorded its window
    (`window_input_run_id`) counts there, or nowhere when that Input run is not in `input_runs`: this is
    the one definition of the windows, shared by every run's `flow_ratio` and by the report.
    """
    inputs = sorted(input_runs, key=lambda run: (run.start_s, run.run_id))
    read = [0] * len(inputs)
    output_list = list(output_runs)
    for output, index in zip(output_list, assign_windows(inputs, output_list, period_s), strict=True):
        if index is not None:
            read[index] += output.bytes_read
    ends = _window_ends(inputs, period_s)
    return [
        Window(
            start_s=run.start_s,
            end_s=end,
            input_run_id=run.run_id,
            input_bytes_written=run.bytes_written,
            output_bytes_read=bytes_read,
            ratio=flow_ratio(bytes_read, run.bytes_written),
        )
        for run, end, bytes_read in zip(inputs, ends, read, strict=True)
    ]


def _window_ends(inputs: Sequence[InputRun], period_s: float | None) -> list[float | None]:
    if period_s is not None and period_s <= 0:
        raise ValueError(f"period_s must be positive or None, got {period_s!r}")
    starts = [run.start_s for run in inputs]
    ends: list[float | None] = [*starts[1:], None] if inputs else []
    if inputs and period_s is not None:
        ends[-1] = starts[-1] + period_s
    return ends


def assign_windows(
    input_runs: Sequence[InputRun], output_runs: Sequence[OutputRun], period_s: float | None = DEFAULT_PERIOD_S
) -> list[int | None]:
    """For each Output run, the index (in `input_runs` sorted by start) of the window it counts in, or None.

    The run's recorded window when it has one, else the last window that started at or before it.
    """
    inputs = sorted(input_runs, key=lambda run: (run.start_s, run.run_id))
    starts = [run.start_s for run in inputs]
    ends = _window_ends(inputs, period_s)
    position = {run.run_id: index for index, run in enumerate(inputs)}
    assigned: list[int | None] = []
    for output in output_runs:
        if output.window_input_run_id is not None:
            assigned.append(position.get(output.window_input_run_id))
            continue
        # The last window whose start is at or before the Output run's start.
        index = bisect.bisect_right(starts, output.start_s) - 1
        end = ends[index] if index >= 0 else None
        inside = index >= 0 and (end is None or output.start_s < end)
        assigned.append(index if inside else None)
    return assigned


@dataclass(frozen=True)
class Slot:
    """One row of the flow's table and one x position of its chart: an Input window with the Output runs
    counted in it, or the Output runs that count in no window (`window` None; `outside` says where)."""

    window: Window | None
    output_runs: tuple[OutputRun, ...]
    outside: str = ""  # BEFORE_FIRST_WINDOW or NO_WINDOW when `window` is None

    @property
    def input_bytes_written(self) -> int:
        return self.window.input_bytes_written if self.window is not None else 0

    @property
    def output_bytes_read(self) -> int:
        return sum(run.bytes_read for run in self.output_runs)

    @property
    def ratio(self) -> float | None:
        """The window's ratio; None (n/a) for a window with nothing to compare and for runs in no window."""
        return self.window.ratio if self.window is not None else None


def flow_slots(
    input_runs: Iterable[InputRun],
    output_runs: Iterable[OutputRun],
    period_s: float | None = DEFAULT_PERIOD_S,
) -> list[Slot]:
    """`windows`, each with its Output runs (in start order), and the Output runs that count in no window.

    Those get a slot of their own, so nothing read is left out: the runs that started before the first
    Input run (BEFORE_FIRST_WINDOW, first), and the others (NO_WINDOW, last): started after the last window
    closed, or recorded a window that is not in `input_runs`, or no Input run at all. The slots' bytes add
    up to every Input run's bytes written and every Output run's bytes read.
    """
    inputs = sorted(input_runs, key=lambda run: (run.start_s, run.run_id))
    outputs = sorted(output_runs, key=lambda run: (run.start_s, run.run_id))
    window_list = windows(inputs, outputs, period_s)
    members: list[list[OutputRun]] = [[] for _ in window_list]
    before: list[OutputRun] = []
    unplaced: list[OutputRun] = []
    for run, index in zip(outputs, assign_windows(inputs, outputs, period_s), strict=True):
        if index is not None:
            members[index].append(run)
        elif inputs and run.start_s < inputs[0].start_s:
            before.append(run)
        else:
            unplaced.append(run)
    slots = [Slot(None, tuple(before), BEFORE_FIRST_WINDOW)] if before else []
    slots += [Slot(window, tuple(runs)) for window, runs in zip(window_list, members, strict=True)]
    if unplaced:
        slots.append(Slot(None, tuple(unplaced), NO_WINDOW))
    return slots


def latest_ratio(window_list: Sequence[Window]) -> float | None:
    """The newest window's ratio that is defined (n/a windows are passed over); None when none is."""
    return next((w.ratio for w in reversed(window_list) if w.ratio is not None), None)


def total_bytes_written(slots: Iterable[Slot]) -> int:
    return sum(slot.input_bytes_written for slot in slots)


def total_bytes_read(slots: Iterable[Slot]) -> int:
    return sum(slot.output_bytes_read for slot in slots)


def producing_run_id(staging_key: str) -> str | None:
    """The Input run id in a staging object name `[folders/]run-<id>-part-r-NNNNN[.ext]`, else None."""
    name = staging_key.rsplit("/", 1)[-1]
    attempt = attempt_of(name)
    if attempt is not None:
        return attempt.run_id
    match = _GLUE_PART_NAME.fullmatch(name)
    return match.group("run_id") if match else None


def bytes_by_input_run(objects: Iterable[_Sized]) -> dict[str, int]:
    """Bytes per producing Input run, in first-seen order; objects with other names are left out."""
    totals: dict[str, int] = {}
    for obj in objects:
        run_id = producing_run_id(obj.key)
        if run_id is not None:
            totals[run_id] = totals.get(run_id, 0) + obj.size
    return totals


def parse_bytes_by_input_run(value: object) -> dict[str, int]:
    """Read the metadata entry back: a {run id: bytes} mapping or a list of {run_id, bytes} items."""
    if isinstance(value, Mapping):
        return {str(run_id): int(size) for run_id, size in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        totals: dict[str, int] = {}
        for item in value:
            if isinstance(item, Mapping) and "run_id" in item:
                totals[str(item["run_id"])] = totals.get(str(item["run_id"]), 0) + int(item.get("bytes", 0))
        return totals
    return {}


@dataclass(frozen=True)
class ReadAccounting:
    """What one Output run read for the first time, read again, and left unread in staging."""

    new_bytes: int
    reprocessed_bytes: int
    backlog_bytes: int
    backlog_files: int
    oldest_unprocessed_age_s: float
    read_state: Bookmark  # every object version any successful Output run has read, after this run

    def metadata(self) -> dict[str, int | float]:
        return {
            "new_bytes": self.new_bytes,
            "reprocessed_bytes": self.reprocessed_bytes,
            "backlog_bytes": self.backlog_bytes,
            "backlog_files": self.backlog_files,
            "oldest_unprocessed_age_s": round(self.oldest_unprocessed_age_s, 3),
        }


def account_reads(
    read_before: Bookmark,
    manifest: Sequence[ObjectInfo],
    staging_after: Iterable[ObjectInfo],
    *,
    now_ms: int,
    max_band_ms: int,
) -> ReadAccounting:
    """Split a run's reads into new and reprocessed bytes, and measure the backlog it leaves.

    `read_before` is a bookmark over what every earlier successful Output run read, whatever its
    bookmark option, so reprocessing shows even with `bookmark: disable`.
    """
    policy = BookmarkPolicy(max_band_ms=max_band_ms)
    reprocessed = sum(obj.size for obj in manifest if covers(read_before, obj, policy))
    read_after = commit(read_before, manifest, policy=policy)
    backlog = select_objects(staging_after, read_after, option="enable", policy=policy).manifest
    oldest = min((obj.last_modified_ms for obj in backlog), default=now_ms)
    return ReadAccounting(
        new_bytes=sum(obj.size for obj in manifest) - reprocessed,
        reprocessed_bytes=reprocessed,
        backlog_bytes=sum(obj.size for obj in backlog),
        backlog_files=len(backlog),
        oldest_unprocessed_age_s=max(now_ms - oldest, 0) / 1000,
        read_state=read_after,
    )
