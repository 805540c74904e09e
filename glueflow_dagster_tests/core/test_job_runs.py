"""Each job's run as one core function (core/input_run.py, core/output_run.py), without Dagster.

The commit log here is a list of events in memory, recorded the way the shell records materializations
(`components/event_log.py` reads the same metadata keys from Dagster's event log); the storage, the
stage and the commit protocol are the real ones.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from glueflow_dagster.core import job_run
from glueflow_dagster.core.bookmarks import (
    ACTION_KEY,
    CTX_KEY,
    MANIFEST_KEY,
    STATE_KEY,
    Bookmark,
    CommittedBookmark,
    Selection,
)
from glueflow_dagster.core.commits import COMMIT_KEY, Attempt, CommitRecord, CommittedParts, claim_commit
from glueflow_dagster.core.config import FlowConfig, load_config
from glueflow_dagster.core.input_run import run_input
from glueflow_dagster.core.job_run import RunRefused, Stage
from glueflow_dagster.core.output_run import OutputRequest, ctx_token, run_output
from glueflow_dagster.core.plan import manifest_from_json
from glueflow_dagster.core.stage import StageRequest, StageResult
from glueflow_dagster.core.storage import LocalStorage, ObjectInfo
from glueflow_dagster_tests.conftest import raw_records, write_flow_file


@dataclass
class Event:
    storage_id: int
    run_id: str
    metadata: dict[str, Any]


@dataclass
class MemoryCommitLog:
    """`F/staging` and `F/output` events, oldest first; a run's materialization is appended on success."""

    staging: list[Event] = field(default_factory=list)
    output: list[Event] = field(default_factory=list)
    observations: list[tuple[int, int]] = field(default_factory=list)
    ended: set[str] = field(default_factory=set)  # runs that finished, failed or were canceled
    next_id: int = 1

    def record(self, events: list[Event], run_id: str, metadata: dict[str, Any]) -> None:
        events.append(Event(self.next_id, run_id, metadata))
        self.next_id += 1

    @staticmethod
    def parts(events: list[Event]) -> CommittedParts:
        def lookup(run_id: str) -> CommitRecord | None:
            found = [e for e in events if e.run_id == run_id and COMMIT_KEY in e.metadata]
            return CommitRecord.from_dict(found[-1].metadata[COMMIT_KEY]) if found else None

        return CommittedParts(lookup)

    @staticmethod
    def known(manifests: list[list[ObjectInfo]]) -> Callable[[Sequence[ObjectInfo]], set[str]]:
        def known(candidates: Sequence[ObjectInfo]) -> set[str]:
            wanted = {(o.key, o.etag) for o in candidates}
            return {o.key for manifest in manifests for o in manifest if (o.key, o.etag) in wanted}

        return known


class InputLog:
    def __init__(self, log: MemoryCommitLog) -> None:
        self.log = log

    def latest_commit(self) -> tuple[int | None, dict[str, Any]]:
        return (self.log.staging[-1].storage_id, self.log.staging[-1].metadata) if self.log.staging else (None, {})

    def committed_parts(self) -> CommittedParts:
        return self.log.parts(self.log.staging)

    def known_objects(self) -> Callable[[Sequence[ObjectInfo]], set[str]]:
        return self.log.known([list(manifest_from_json(e.metadata[MANIFEST_KEY])) for e in self.log.staging])

    def observe_source(self, listing: Sequence[ObjectInfo], selection: Selection) -> None:
        self.log.observations.append((len(listing), len(selection.manifest)))

    def settled(self, attempt: Attempt) -> bool:
        return attempt.run_id in self.log.ended


class OutputLog:
    def __init__(self, log: MemoryCommitLog) -> None:
        self.log = log

    def committed_bookmark(self, ctx: str, newer_than: CommittedBookmark | None = None) -> CommittedBookmark:
        after = newer_than.storage_id if newer_than is not None and newer_than.storage_id is not None else 0
        for event in reversed(self.log.output):
            if event.storage_id > after and event.metadata.get(CTX_KEY) == ctx and ACTION_KEY in event.metadata:
                bookmark = Bookmark.from_dict(event.metadata[STATE_KEY])
                return CommittedBookmark(ctx, bookmark, event.storage_id, event.run_id, event.metadata[ACTION_KEY])
        return newer_than if newer_than is not None else CommittedBookmark(ctx, Bookmark())

    def state_after_run(self, ctx: str, run_id: str) -> Bookmark:
        [event] = [e for e in self.log.output if e.run_id == run_id and e.metadata.get(CTX_KEY) == ctx]
        return Bookmark.from_dict(event.metadata[STATE_KEY])

    def known_objects(self, ctx: str) -> Callable[[Sequence[ObjectInfo]], set[str]]:
        return self.log.known(
            [list(manifest_from_json(e.metadata[MANIFEST_KEY])) for e in self.log.output if ACTION_KEY in e.metadata]
        )

    def committed_staging_parts(self) -> CommittedParts:
        return self.log.parts(self.log.staging)

    def committed_output_parts(self) -> CommittedParts:
        return self.log.parts(self.log.output)

    def flow_figures(self, result: StageResult, staging_after: list[ObjectInfo]) -> dict[str, Any]:
        return {"staging_objects_after": len(staging_after)}

    def earlier_backlogs(self, count: int) -> list[int]:
        return []

    def settled(self, attempt: Attempt) -> bool:
        return attempt.run_id in self.log.ended


def polars_stage(after_stage: Callable[[], None] = lambda: None) -> Stage:
    """The polars stage as the shell runs it (pending parts); `after_stage` runs between stage and commit."""
    stage = job_run.polars_stage(lambda _msg: None)

    def staged_then(request: StageRequest) -> StageResult:
        result = stage(request)
        after_stage()
        return result

    return staged_then


@pytest.fixture
def flow(tmp_path: Path) -> FlowConfig:
    return load_config(write_flow_file(tmp_path, bookmark="enable")).flows["events"]


def _stores(flow: FlowConfig) -> tuple[LocalStorage, LocalStorage, LocalStorage]:
    stores = [LocalStorage(Path(loc.uri)) for loc in (flow.input, flow.staging, flow.output)]
    for store in stores:
        store.root.mkdir(parents=True, exist_ok=True)
    return stores[0], stores[1], stores[2]


def _input(flow: FlowConfig, log: MemoryCommitLog, run_id: str, stage: Stage | None = None) -> dict[str, Any]:
    raw, staging, _ = _stores(flow)
    try:
        outcome = run_input(
            flow, InputLog(log), raw, staging, Attempt(run_id, 1), stage or polars_stage(),
            job_name="events_input_job", now_ms=0, info=lambda _msg: None,
        )  # fmt: skip
        log.record(log.staging, run_id, outcome.metadata)
    finally:
        log.ended.add(run_id)
    return outcome.metadata


def _output(flow: FlowConfig, log: MemoryCommitLog, run_id: str, stage: Stage | None = None) -> dict[str, Any]:
    _, staging, output = _stores(flow)
    try:
        outcome = run_output(
            flow, OutputLog(log), staging, output, Attempt(run_id, 1), OutputRequest(), stage or polars_stage(),
            job_name="events_output_job", now_ms=0, info=lambda _msg: None,
        )  # fmt: skip
        log.record(log.output, run_id, outcome.metadata)
    finally:
        log.ended.add(run_id)
    return outcome.metadata


def _output_ids(output: LocalStorage) -> list[int]:
    ids: list[int] = []
    for obj in output.list():
        if obj.key.startswith("_glueflow/"):
            continue
        data = output.read_bytes(obj.key)
        text = gzip.decompress(data).decode() if data[:2] == b"\x1f\x8b" else data.decode()
        ids += [json.loads(line)["event_id"] for line in text.splitlines() if line]
    return sorted(ids)


def test_input_then_output_carries_every_record_once_and_the_bookmark_moves_on(flow: FlowConfig) -> None:
    raw, _, output = _stores(flow)
    log = MemoryCommitLog()
    raw.write_bytes("a.json", raw_records(0, 50))
    first_in = _input(flow, log, "in-1")
    assert first_in["records_written"] == 50 and log.observations == [(1, 1)]
    assert _output(flow, log, "out-1")["records_written"] == 50

    raw.write_bytes("b.json", raw_records(50, 30))
    assert _input(flow, log, "in-2")["records_read"] == 30  # the Input bookmark skips a.json
    second = _output(flow, log, "out-2")
    assert second["records_read"] == 30 and second["new_files"] == 1  # the Output bookmark skips in-1's parts
    assert _output(flow, log, "out-3")["records_read"] == 0
    assert _output_ids(output) == list(range(80))


def test_the_stage_leaves_pending_parts_only_and_the_commit_makes_them_visible(flow: FlowConfig) -> None:
    raw, staging, _ = _stores(flow)
    log = MemoryCommitLog()
    raw.write_bytes("a.json", raw_records(0, 20))
    seen: dict[str, list[str]] = {}

    def between_stage_and_commit() -> None:
        seen["visible"] = [o.key for o in staging.list() if not o.key.startswith("_glueflow/")]
        seen["pending"] = [u.key for u in staging.pending_uploads()]

    metadata = _input(flow, log, "in-1", polars_stage(after_stage=between_stage_and_commit))
    assert seen["visible"] == [] and len(seen["pending"]) >= 1  # written by the stage, seen by no reader
    committed = sorted(key for key, *_ in metadata["commit"]["parts"])
    assert committed == sorted(seen["pending"])
    assert sorted(o.key for o in staging.list() if not o.key.startswith("_glueflow/")) == committed
    assert list(staging.pending_uploads()) == []


def test_an_output_bookmark_committed_during_the_stage_fails_the_fence_and_discards_only_this_attempt(
    flow: FlowConfig,
) -> None:
    raw, _, output = _stores(flow)
    log = MemoryCommitLog()
    raw.write_bytes("a.json", raw_records(0, 40))
    _input(flow, log, "in-1")

    def a_concurrent_run_commits() -> None:
        _output(flow, log, "out-concurrent")

    with pytest.raises(RunRefused, match=r"^bookmark conflict for context 'bookmark_ctx'.*nothing was committed"):
        _output(flow, log, "out-loser", polars_stage(after_stage=a_concurrent_run_commits))
    assert [e.run_id for e in log.output] == ["out-concurrent"]
    assert list(output.pending_uploads()) == []  # the loser's pending parts are gone
    assert _output_ids(output) == list(range(40))  # the winner's commit is untouched, nothing twice


def test_an_input_commit_during_the_stage_fails_the_input_fence(flow: FlowConfig) -> None:
    raw, staging, _ = _stores(flow)
    log = MemoryCommitLog()
    raw.write_bytes("a.json", raw_records(0, 20))

    def a_concurrent_input_commits() -> None:
        _input(flow, log, "in-concurrent")

    with pytest.raises(RunRefused, match=r"^commit conflict on .*staging: another run committed there"):
        _input(flow, log, "in-loser", polars_stage(after_stage=a_concurrent_input_commits))
    assert [e.run_id for e in log.staging] == ["in-concurrent"]
    assert list(staging.pending_uploads()) == []
    committed = InputLog(log).committed_parts().visible(staging.list())
    parts = [obj.key for obj in committed if not obj.key.startswith("_glueflow/")]
    assert parts and {key.split("-part-")[0] for key in parts} == {"run-in-concurrent-attempt-1"}


def test_a_bad_bookmark_option_is_refused_in_one_line_before_anything_is_written(flow: FlowConfig) -> None:
    _, _, output = _stores(flow)
    with pytest.raises(RunRefused, match=r"^run config bookmark: expected one of enable, disable, pause, got 'on'$"):
        run_output(
            flow, OutputLog(MemoryCommitLog()), _stores(flow)[1], output, Attempt("r", 1),
            OutputRequest(bookmark="on"), polars_stage(), job_name="j", now_ms=0, info=lambda _msg: None,
        )  # fmt: skip
    assert list(output.list()) == []


def test_two_output_runs_past_the_fence_at_once_commit_once(flow: FlowConfig) -> None:
    """The window the fence alone leaves: the other run has claimed and is still committing (its event not
    written yet) when this one checks. The claim refuses this one; nothing is written twice."""
    raw, _, output = _stores(flow)
    log = MemoryCommitLog()
    raw.write_bytes("a.json", raw_records(0, 30))
    _input(flow, log, "in-1")

    def a_live_run_claims_first() -> None:
        # The other run has staged and claimed, and has not committed yet (it is still running).
        fence = f"output-{ctx_token('bookmark_ctx')}-v0"
        claim_commit(output, fence, Attempt("out-live", 1), settled=lambda _attempt: False)

    with pytest.raises(RunRefused, match=r"^commit conflict: run out-live \(attempt 1\) is committing after the same"):
        _output(flow, log, "out-second", polars_stage(after_stage=a_live_run_claims_first))
    assert log.output == [] and list(output.pending_uploads()) == []
    assert _output_ids(output) == []
