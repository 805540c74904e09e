"""The Input job's run, start to commit: plan -> stage -> account -> commit.

Read the new raw objects (the Input bookmark over the listing), map them, write staging as pending
parts, and commit them together with the Input bookmark, unless another Input run committed since
this one planned (the fence). What the run needs from the commit log (in the shell, `F/staging`'s
materializations in Dagster's event log) comes through `InputLog`; the stage through `Stage`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from glueflow_dagster.core.bookmarks import MANIFEST_KEY, Bookmark, Selection, commit, select_objects
from glueflow_dagster.core.claims import ClaimTable, prune_superseded_claims
from glueflow_dagster.core.commits import Attempt, CommittedParts, aborted_on_failure, publish
from glueflow_dagster.core.config import FlowConfig
from glueflow_dagster.core.job_run import (
    SUMMARY_KEY,
    Log,
    RunOutcome,
    RunRefused,
    Stage,
    claim_or_refuse,
    commit_figures,
    conflict_on_location,
    garbage_collection,
    location_figures,
    stage_request,
    summary_markdown,
)
from glueflow_dagster.core.plan import list_location, manifest_to_json
from glueflow_dagster.core.storage import ObjectInfo, Storage

# The Input job's own bookmark rides on its staging materializations, so it commits only on success.
INPUT_BOOKMARK_KEY = "input_bookmark"


class InputLog(Protocol):
    """The Input job's view of the commit log: `F/staging`'s materializations."""

    def latest_commit(self) -> tuple[int | None, dict[str, Any]]:
        """The newest commit's version (the fence compares it) and its metadata, in one read."""
        ...

    def committed_parts(self) -> CommittedParts: ...

    def known_objects(self) -> Callable[[Sequence[ObjectInfo]], set[str]]:
        """Which raw objects committed Input runs read (for late-file candidates)."""
        ...

    def observe_source(self, listing: Sequence[ObjectInfo], selection: Selection) -> None:
        """Record what this run found at the source (`F/raw_input`'s observation)."""
        ...

    def settled(self, attempt: Attempt) -> bool:
        """Whether that attempt has ended (its run finished, failed or was canceled)."""
        ...


def run_input(
    flow: FlowConfig,
    log: InputLog,
    source: Storage,
    target: Storage,
    attempt: Attempt,
    stage: Stage,
    *,
    job_name: str,
    now_ms: int,
    info: Log,
    claims: ClaimTable | None = None,
) -> RunOutcome:
    planned_from, committed = log.latest_commit()  # the bookmark and the fence's version: one materialization
    bookmark = Bookmark.from_dict(committed.get(INPUT_BOOKMARK_KEY))
    garbage = garbage_collection(
        target,
        log.committed_parts(),
        now_ms=now_ms,
        grace_s=flow.staging.orphan_grace_s,
        log=info,
        settled=log.settled,
        attempt=attempt,
    )
    listing = list(list_location(source, flow.input, must_exist=True))
    selection = select_objects(listing, bookmark, option="enable", known=log.known_objects())
    log.observe_source(listing, selection)
    info(
        f"{selection.listed_files} objects listed, {len(selection.manifest)} new "
        f"({selection.already_read_files} read by earlier runs)"
    )
    request = stage_request(
        flow.input_job, selection.manifest, attempt, reads=(source, flow.input), writes=(target, flow.staging)
    )
    result = stage(request)
    with aborted_on_failure(target, result.pending, info):
        fence = f"input-after-{planned_from or 0}"
        claim_or_refuse(target, fence, attempt, log.settled, claims=claims, log=info)
        if log.latest_commit()[0] != planned_from:
            raise RunRefused(conflict_on_location(target.uri))
        prune_superseded_claims(target, fence, claims, info)  # the fence passed: older versions' rows go
        record = publish(target, attempt, job_name, result.pending, result.records_written)
    metadata = commit_figures(result, record, garbage)
    metadata[SUMMARY_KEY] = summary_markdown(f"{flow.name} Input run", metadata)
    metadata |= {
        MANIFEST_KEY: manifest_to_json(result.read),
        INPUT_BOOKMARK_KEY: commit(bookmark, selection).to_dict(),
        **location_figures(flow.staging.uri, result.records_written),
    }
    return RunOutcome(metadata)
