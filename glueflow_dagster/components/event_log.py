# No `from __future__ import annotations`: Dagster reads the context annotations at runtime.
"""The core's view of the commit log (`core.input_run.InputLog`, `core.output_run.OutputLog`), read from
Dagster's event log: the instance's materializations and observations of the flow's assets."""

import time
from collections.abc import Callable, Sequence
from typing import Any

from dagster import AssetExecutionContext, AssetObservation, DagsterInstance

from glueflow_dagster.components.bookmark_store import (
    committed_bookmark,
    input_known_objects,
    known_objects,
    state_after_run,
)
from glueflow_dagster.components.commit_log import committed_parts, latest_commit
from glueflow_dagster.components.jobs import INPUT_RUN_TAG, output_key, raw_input_key, staging_key
from glueflow_dagster.components.monitoring import RunClock, earlier_backlogs, output_flow_figures
from glueflow_dagster.core.bookmarks import Bookmark, CommittedBookmark, Selection
from glueflow_dagster.core.commits import Attempt, CommittedParts, admin_lease
from glueflow_dagster.core.config import FlowConfig
from glueflow_dagster.core.job_run import URI_KEY
from glueflow_dagster.core.stage import StageResult
from glueflow_dagster.core.storage import ObjectInfo, location_uri


def now_ms() -> int:
    return int(time.time() * 1000)


def source_observation(
    flow: FlowConfig, listing: Sequence[ObjectInfo], selection: Selection, at_ms: int
) -> AssetObservation:
    """What an Input run found at the source: objects and bytes listed, those new since the last run and
    the age of the oldest of them (0 when nothing is unread), so `F/raw_input` has a history and plots."""
    new = selection.manifest
    oldest = min((obj.last_modified_ms for obj in new), default=at_ms)
    return AssetObservation(
        asset_key=raw_input_key(flow.name),
        metadata={
            "objects_listed": len(listing),
            "bytes_listed": sum(obj.size for obj in listing),
            "new_objects": len(new),
            "new_bytes": sum(obj.size for obj in new),
            "oldest_unread_age_s": round(max(at_ms - oldest, 0) / 1000, 3),
            URI_KEY: location_uri(flow.input.uri),
        },
    )


def attempt_settled(instance: DagsterInstance, attempt: Attempt) -> bool:
    """An attempt has ended when its run has (a run this instance does not know cannot be committing); a
    bookmark admin action's when its lease has."""
    admin = admin_lease(attempt.run_id)
    if admin is not None:
        return admin[1] <= now_ms()
    record = instance.get_run_record_by_id(attempt.run_id)
    return record is None or record.dagster_run.is_finished


class InputEventLog:
    """`F/staging`'s materializations, and `F/raw_input`'s observations written through the run."""

    def __init__(self, context: AssetExecutionContext, flow: FlowConfig) -> None:
        self.context, self.flow, self.key = context, flow, staging_key(flow.name)

    def latest_commit(self) -> tuple[int | None, dict[str, Any]]:
        return latest_commit(self.context.instance, self.key)

    def committed_parts(self) -> CommittedParts:
        return committed_parts(self.context.instance, self.key)

    def known_objects(self) -> Callable[[Sequence[ObjectInfo]], set[str]]:
        return input_known_objects(self.context.instance, self.flow.name)

    def observe_source(self, listing: Sequence[ObjectInfo], selection: Selection) -> None:
        self.context.log_event(source_observation(self.flow, listing, selection, now_ms()))

    def settled(self, attempt: Attempt) -> bool:
        return attempt_settled(self.context.instance, attempt)


class OutputEventLog:
    """The bookmark's events on `F/output`, the commits on `F/staging` and `F/output`, the flow's history."""

    def __init__(self, context: AssetExecutionContext, flow: FlowConfig) -> None:
        self.context, self.flow = context, flow
        self.instance, self.name = context.instance, flow.name

    def committed_bookmark(self, ctx: str, newer_than: CommittedBookmark | None = None) -> CommittedBookmark:
        return committed_bookmark(self.instance, self.name, ctx, newer_than=newer_than)

    def state_after_run(self, ctx: str, run_id: str) -> Bookmark:
        return state_after_run(self.instance, self.name, ctx, run_id)

    def known_objects(self, ctx: str) -> Callable[[Sequence[ObjectInfo]], set[str]]:
        return known_objects(self.instance, self.name, ctx)

    def committed_staging_parts(self) -> CommittedParts:
        return committed_parts(self.instance, staging_key(self.name))

    def committed_output_parts(self) -> CommittedParts:
        return committed_parts(self.instance, output_key(self.name))

    def flow_figures(self, result: StageResult, staging_after: list[ObjectInfo]) -> dict[str, Any]:
        run = self.context.run
        record = self.instance.get_run_record_by_id(run.run_id)
        started = float(record.start_time or time.time()) if record is not None else time.time()
        return output_flow_figures(
            self.instance,
            self.name,
            RunClock(run.run_id, started),
            run.tags.get(INPUT_RUN_TAG),
            result.bytes_read,
            result.read,
            staging_after,
            now_ms=now_ms(),
            max_band_ms=self.flow.output_job.max_band_ms,
        )

    def earlier_backlogs(self, count: int) -> list[int]:
        return earlier_backlogs(self.instance, self.name, count)

    def settled(self, attempt: Attempt) -> bool:
        return attempt_settled(self.instance, attempt)
